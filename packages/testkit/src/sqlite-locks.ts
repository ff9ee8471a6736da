/**
 * Tests only: whether this process's SQLite locks keep another process out of
 * a live database file (@domicile/shard live-file.ts). The other process
 * opens the file in `locking_mode=EXCLUSIVE` and tries to write, as a tool
 * that does not share the node's `-shm` would: `locked` when SQLite refuses
 * it (busy), `wrote` when it gets in. `betterSqlite3` is the resolved path of
 * the caller's better-sqlite3 (`createRequire(import.meta.url).resolve(...)`).
 */
import { execFileSync } from 'node:child_process';

export function exclusiveWriteFromAnotherProcess(dbPath: string, betterSqlite3: string): 'locked' | 'wrote' {
  const script = `
    const Database = require(${JSON.stringify(betterSqlite3)});
    const db = new Database(${JSON.stringify(dbPath)}, { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('CREATE TABLE IF NOT EXISTS intruder (x)');
      process.stdout.write('wrote');
    } catch (err) {
      process.stdout.write(err.code === 'SQLITE_BUSY' ? 'locked' : 'error ' + err.message);
    } finally {
      db.close();
    }`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  if (out !== 'locked' && out !== 'wrote') throw new Error(`unexpected answer from the other process: ${out}`);
  return out;
}
