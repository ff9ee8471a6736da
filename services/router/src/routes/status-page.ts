/** The status page (DESIGN §11): plain HTML and JS, no build step, reads GET /v1/status. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Domicile status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:14px system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}</style>
</head><body>
<h1>Domicile</h1>
<p id="summary">loading…</p>
<table><thead><tr><th>Region</th><th>Jurisdiction</th><th>Nodes</th><th>Tenants</th></tr></thead><tbody id="regions"></tbody></table>
<script>
async function refresh() {
  try {
    const s = await (await fetch('/v1/status')).json();
    document.getElementById('summary').textContent =
      s.tenants + ' tenants · ' + s.shards.open + ' open shards · ' + s.movesInProgress + ' moves in progress · policy ' + s.policyHash.slice(0, 12);
    const rows = document.getElementById('regions');
    rows.replaceChildren(...s.regions.map((r) => {
      const tr = document.createElement('tr');
      for (const v of [r.name, r.jurisdiction, r.nodes.join(', ') || '—', r.tenants]) {
        const td = document.createElement('td'); td.textContent = String(v); tr.append(td);
      }
      return tr;
    }));
  } catch (e) { document.getElementById('summary').textContent = 'status unavailable'; }
}
refresh(); setInterval(refresh, 5000);
</script></body></html>`;
