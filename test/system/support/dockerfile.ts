import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/*
 * The Dockerfile read as the list of steps a Docker engine would take, for test/system/image.test.ts,
 * which performs them on this machine: each stage's file system is a directory (an absolute path of
 * the image, under one of its WORKDIRs or VOLUMEs, maps to the same path below that directory),
 * COPY copies from the checkout (the build context) or from another stage's directory, and RUN runs
 * its shell command there. Only the instructions keyplane's Dockerfile uses are understood; any
 * other fails the test, so a change to the Dockerfile cannot go untested silently.
 */

export interface Stage {
  name: string;
  steps: Step[];
}

export type Step =
  | { kind: 'WORKDIR'; dir: string }
  | { kind: 'COPY'; from?: string; sources: string[]; dest: string }
  | { kind: 'RUN'; command: string }
  | { kind: 'ENV'; vars: Record<string, string> }
  | { kind: 'USER'; user: string };

export interface Dockerfile {
  stages: Stage[];
  /** The last stage's image settings. */
  labels: Record<string, string>;
  volumes: string[];
  exposed: number[];
  healthcheck: string[];
  cmd: string[];
}

/** Logical lines: continuations joined, comments and blank lines dropped. */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line === '') continue;
    if (line.endsWith('\\')) current += `${line.slice(0, -1)} `;
    else {
      out.push(current + line);
      current = '';
    }
  }
  return out;
}

/** `k=v k2="v 2"` pairs (ENV, LABEL, ARG defaults), with ${NAME} replaced from `vars`. */
function pairs(args: string, vars: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    out[m[1]!] = value.replace(/\$\{(\w+)\}/g, (_, name: string) => vars[name] ?? '');
  }
  return out;
}

export function parseDockerfile(text: string): Dockerfile {
  const df: Dockerfile = { stages: [], labels: {}, volumes: [], exposed: [], healthcheck: [], cmd: [] };
  const globalArgs: Record<string, string> = {};
  let args: Record<string, string> = {};
  for (const line of logicalLines(text)) {
    const [, word, rest = ''] = /^(\w+)\s*(.*)$/.exec(line)!;
    const stage = df.stages.at(-1);
    switch (word!.toUpperCase()) {
      case 'ARG': {
        const [name, value] = rest.includes('=') ? Object.entries(pairs(rest, {}))[0]! : [rest.trim(), globalArgs[rest.trim()] ?? ''];
        (stage ? args : globalArgs)[name] = value;
        break;
      }
      case 'FROM':
        df.stages.push({ name: /\bAS\s+(\S+)/i.exec(rest)?.[1] ?? String(df.stages.length), steps: [] });
        args = {};
        break;
      case 'WORKDIR':
        stage!.steps.push({ kind: 'WORKDIR', dir: rest.trim() });
        break;
      case 'COPY': {
        const words = rest.trim().split(/\s+/);
        const from = words[0]!.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined;
        stage!.steps.push({ kind: 'COPY', from, sources: words.slice(0, -1), dest: words.at(-1)! });
        break;
      }
      case 'RUN':
        stage!.steps.push({ kind: 'RUN', command: rest });
        break;
      case 'ENV':
        stage!.steps.push({ kind: 'ENV', vars: pairs(rest, args) });
        break;
      case 'USER':
        stage!.steps.push({ kind: 'USER', user: rest.trim() });
        break;
      case 'LABEL':
        df.labels = { ...df.labels, ...pairs(rest, args) };
        break;
      case 'VOLUME':
        df.volumes = JSON.parse(rest) as string[];
        break;
      case 'EXPOSE':
        df.exposed = rest.trim().split(/\s+/).map(Number);
        break;
      case 'HEALTHCHECK':
        df.healthcheck = JSON.parse(/\bCMD\s+(\[.*\])$/.exec(rest)![1]!) as string[];
        break;
      case 'CMD':
        df.cmd = JSON.parse(rest) as string[];
        break;
      default:
        throw new Error(`the image test does not know the Dockerfile instruction ${word}`);
    }
  }
  return df;
}

/** COPY's semantics for the forms the Dockerfile uses: a directory's contents into dest, files into a dest ending in / or named as such. */
export function copyInto(sources: string[], dest: string): void {
  const intoDir = dest.endsWith('/') || sources.length > 1;
  if (intoDir) mkdirSync(dest, { recursive: true });
  for (const src of sources) {
    if (!existsSync(src)) throw new Error(`COPY: ${src} does not exist`);
    const target = intoDir ? path.join(dest, path.basename(src)) : dest;
    cpSync(src, target, { recursive: statSync(src).isDirectory(), verbatimSymlinks: true });
  }
}

export function readDockerfile(file: string): Dockerfile {
  return parseDockerfile(readFileSync(file, 'utf8'));
}
