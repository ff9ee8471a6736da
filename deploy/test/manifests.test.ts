import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// deploy/ is not a workspace package: borrow the `yaml` parser that packages/policy depends on,
// through the smallest shape of it used here.
interface YamlDocument {
  errors: Array<{ message: string }>;
  toJS(): unknown;
}
const YAML = createRequire(fileURLToPath(new URL('../../packages/policy/package.json', import.meta.url)))('yaml') as {
  parseAllDocuments(source: string): YamlDocument[];
  parse(source: string): unknown;
};

const root = fileURLToPath(new URL('../..', import.meta.url));
const k8sDir = path.join(root, 'deploy/k8s');

/** Loosely typed manifest: the test checks the fields it reads. */
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: unknown };
type Any = any;

function load(file: string): Manifest[] {
  const docs = YAML.parseAllDocuments(readFileSync(path.join(k8sDir, file), 'utf8'));
  for (const d of docs) expect(d.errors.map((e) => `${file}: ${e.message}`)).toEqual([]);
  return docs.map((d) => d.toJS() as Manifest).filter((m) => m !== null);
}

const policy = YAML.parse(readFileSync(path.join(root, 'config/placement.yaml'), 'utf8')) as { regions: Record<string, unknown> };
const regions = Object.keys(policy.regions);
const kustomization = YAML.parse(readFileSync(path.join(k8sDir, 'kustomization.yaml'), 'utf8')) as Any;
const applied = (kustomization.resources as string[]).flatMap((f) => load(f).map((m) => ({ file: f, m })));

describe('deploy/k8s manifests', () => {
  it('parse, and every document names its apiVersion, kind and name', () => {
    const files = readdirSync(k8sDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect(files.length).toBeGreaterThan(4);
    for (const f of files) {
      for (const m of load(f)) {
        expect(m.apiVersion, f).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
        expect(['Namespace', 'ConfigMap', 'Secret', 'Service', 'StatefulSet', 'PodDisruptionBudget']).toContain(m.kind);
        expect(m.metadata.name, f).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
      }
    }
    // Every resource of the kustomization exists; the example Secret is not applied.
    for (const f of kustomization.resources as string[]) expect(existsSync(path.join(k8sDir, f)), f).toBe(true);
    expect(kustomization.resources).not.toContain('secret.example.yaml');
  });

  it('generate the policy ConfigMap from the policy file', () => {
    const gen = (kustomization.configMapGenerator as Any[]).find((g) => g.name === 'domicile-policy');
    const [key, file] = (gen.files[0] as string).split('=');
    expect(key).toBe('placement.yaml');
    expect(path.resolve(k8sDir, file!)).toBe(path.join(root, 'config/placement.yaml'));
    const env = applied.find(({ m }) => m.kind === 'ConfigMap' && m.metadata.name === 'domicile-env')!.m as Any;
    expect(env.data.DOMICILE_POLICY).toBe(`/etc/domicile/${key}`);
    // One bucket per region of the policy.
    const buckets = (env.data.DOMICILE_BUCKETS as string).split(',').map((p) => p.split('=')[0]);
    expect(buckets.sort()).toEqual([...regions].sort());
  });

  it.each(regions)('run region %s as a StatefulSet with a volume per node behind a headless Service, configured per DESIGN §6a', (region) => {
    const name = `domicile-${region}`;
    const svc = applied.find(({ m }) => m.kind === 'Service' && m.metadata.name === name)?.m as Any;
    const sts = applied.find(({ m }) => m.kind === 'StatefulSet' && m.metadata.name === name)?.m as Any;
    expect(svc, `Service ${name}`).toBeDefined();
    expect(sts, `StatefulSet ${name}`).toBeDefined();
    expect(svc.spec.clusterIP).toBe('None');
    expect(sts.spec.serviceName).toBe(name);
    const podLabels = sts.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(sts.spec.selector.matchLabels)) expect(podLabels[k]).toBe(v);
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(podLabels[k]).toBe(v);
    expect(podLabels['domicile/region']).toBe(region);
    expect(sts.spec.template.spec.nodeSelector).toEqual({ 'domicile/region': region });

    const claim = sts.spec.volumeClaimTemplates[0];
    const [container] = sts.spec.template.spec.containers;
    expect(container.volumeMounts).toContainEqual({ name: claim.metadata.name, mountPath: '/data' });
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);
    expect(sts.spec.template.spec.securityContext.runAsNonRoot).toBe(true);

    const env = new Map<string, Any>((container.env as Any[]).map((e) => [e.name, e]));
    expect(env.get('DOMICILE_REGION').value).toBe(region);
    expect(env.get('DOMICILE_NODE_ID').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env.get('DOMICILE_PUBLIC_URL').value).toBe(`http://$(DOMICILE_NODE_ID).${name}.$(POD_NAMESPACE).svc.cluster.local:8080`);
    expect(env.get('DOMICILE_DATA_DIR').value).toBe('/data');
    // $(VAR) expands only variables defined earlier in the list.
    const order = [...env.keys()];
    expect(order.indexOf('DOMICILE_NODE_ID')).toBeLessThan(order.indexOf('DOMICILE_PUBLIC_URL'));
    expect(order.indexOf('POD_NAMESPACE')).toBeLessThan(order.indexOf('DOMICILE_PUBLIC_URL'));
    // Everything a cluster node refuses to start without comes from the Secret.
    const secret = load('secret.example.yaml')[0] as Any;
    for (const v of ['DOMICILE_REDIS_URL', 'DOMICILE_ADMIN_TOKEN', 'DOMICILE_TOKEN_SECRET', 'DOMICILE_CLUSTER_SECRET']) {
      const ref = env.get(v)?.valueFrom?.secretKeyRef;
      expect(ref?.name, v).toBe(secret.metadata.name);
      expect(Object.keys(secret.stringData), v).toContain(ref.key);
    }
    expect(container.envFrom).toContainEqual({ configMapRef: { name: 'domicile-env' } });
    const policyVolume = (sts.spec.template.spec.volumes as Any[]).find((v) => v.configMap?.name === 'domicile-policy');
    expect(container.volumeMounts).toContainEqual({ name: policyVolume.name, mountPath: '/etc/domicile', readOnly: true });
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
  });
});

describe('deploy/docker/Dockerfile', () => {
  const text = readFileSync(path.join(root, 'deploy/docker/Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => !l.startsWith('#'));

  it('builds on node:20-bookworm and runs `domicile serve` on slim as a non-root user with a data volume', () => {
    const froms = lines.filter((l) => l.startsWith('FROM '));
    expect(froms).toEqual(['FROM node:20-bookworm AS build', 'FROM node:20-bookworm-slim']);
    expect(text).toMatch(/npm i -g pnpm@12\.4\.2/);
    expect(text).toMatch(/pnpm install --frozen-lockfile/);
    expect(text).toMatch(/npm_config_nodedir=\/usr\/local/);
    expect(lines.find((l) => l.startsWith('USER '))).toMatch(/^USER [1-9]\d*/);
    expect(text).toMatch(/VOLUME \["\/data"\]/);
    expect(text).toMatch(/DOMICILE_DATA_DIR=\/data/);
    expect(lines.find((l) => l.startsWith('CMD '))).toBe('CMD ["node", "packages/cli/bin/domicile.js", "serve"]');
    // The launcher it runs exists.
    expect(existsSync(path.join(root, 'packages/cli/bin/domicile.js'))).toBe(true);
  });
});
