#!/usr/bin/env node
// Checks hookflow's Activepieces event catalog (templates/events/activepieces.json) against a
// release of @activepieces/shared, the package that defines Activepieces' audit events.
//
//   npm pack @activepieces/shared            # or: npm pack @activepieces/shared@0.96.2
//   node tools/catalog/activepieces.mjs activepieces-shared-0.96.2.tgz            # check
//   node tools/catalog/activepieces.mjs activepieces-shared-0.96.2.tgz --record   # record
//
// It reads, from the tarball alone (no install, nothing of the package is run):
//   - package/package.json: the version;
//   - package/src/lib/ee/audit-events/index.js: the `ApplicationEventName` enum (every event
//     name) and `summarizeApplicationEvent` (the sentence Activepieces shows for each event).
// and reports
//   - names the release defines that the catalog lacks (missing) and catalog names the release
//     does not define (extra);
//   - whether the catalog's recorded release (`release`: package, version, eventNames) is this
//     release;
//   - per event, the release's summary as a catalog template (`${event.data.x}` -> `{{data.x}}`)
//     where the catalog's summary differs from it. Informational only: the catalog's summaries
//     deliberately say more (who acted, the flow's name, a run's status), which generated log
//     steps and hookflow's own audit log rely on; the release's sentence is shown so a changed
//     wording is noticed. Summaries the release computes (flow.updated, project.replaced) are
//     marked as such.
// Exit status: 0 when the catalog has exactly the release's names and records this release;
// 1 when it does not; 2 for bad usage or a tarball without the expected files.
//
// --record writes the release (version and names) into the catalog's `release` field and
// leaves the events alone: the samples are written by hand. After recording a newer release,
// `cargo nextest run -p hookflow --lib catalog` fails and names every event still to be added
// (or removed) until the catalog matches it.
//
// The catalog path defaults to templates/events/activepieces.json beside this script;
// --catalog <path> picks another file.

import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = '@activepieces/shared';
const EVENTS_JS = 'package/src/lib/ee/audit-events/index.js';

function usage(message) {
  console.error(`activepieces.mjs: ${message}`);
  console.error('usage: node tools/catalog/activepieces.mjs <shared.tgz> [--record] [--catalog <path>]');
  process.exit(2);
}

/** The regular files of a (gzipped) POSIX tar archive, by path. */
function untar(bytes) {
  const data = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  const files = new Map();
  let offset = 0;
  let longName = null;
  while (offset + 512 <= data.length) {
    const header = data.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start, length) => {
      const raw = header.subarray(start, start + length);
      const end = raw.indexOf(0);
      return raw.subarray(0, end === -1 ? length : end).toString('utf8');
    };
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = null;
    const body = data.subarray(offset + 512, offset + 512 + size);
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0+$/, '');
    } else if (type === 'x') {
      const path = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (path) longName = path[1];
    } else if (type === '0' || type === '\0') {
      files.set(name, body.toString('utf8'));
    }
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Event names in the order the enum declares them. */
function eventNames(source) {
  const names = [...source.matchAll(/ApplicationEventName\["(\w+)"\] = "([^"]+)"/g)].map((m) => ({
    constant: m[1],
    name: m[2],
  }));
  if (names.length === 0) usage(`${EVENTS_JS} declares no ApplicationEventName`);
  return names;
}

/**
 * The release's summary per event constant, as a catalog template, or null where the summary is
 * computed (a block with more than one plain `return` of a template literal).
 */
function summaries(source) {
  const start = source.indexOf('function summarizeApplicationEvent');
  if (start === -1) return new Map();
  const end = source.indexOf('\nfunction ', start + 1);
  const body = source.slice(start, end === -1 ? undefined : end);
  const result = new Map();
  const cases = [...body.matchAll(/case ApplicationEventName\.(\w+):/g)];
  cases.forEach((match, i) => {
    const from = match.index + match[0].length;
    const to = i + 1 < cases.length ? cases[i + 1].index : body.length;
    const text = body.slice(from, to);
    const returns = [...text.matchAll(/return (`[^`]*`|[^;]+);/g)].map((m) => m[1]);
    const plain = returns.length === 1 && returns[0].startsWith('`') && !/\bconst\b/.test(text);
    result.set(
      match[1],
      plain ? returns[0].slice(1, -1).replace(/\$\{event\.([\w.]+)\}/g, '{{$1}}') : null,
    );
  });
  return result;
}

const args = process.argv.slice(2);
const record = args.includes('--record');
const catalogFlag = args.indexOf('--catalog');
const here = dirname(fileURLToPath(import.meta.url));
const catalogPath =
  catalogFlag !== -1 ? args[catalogFlag + 1] : resolve(here, '../../templates/events/activepieces.json');
const tarball = args.find((a, i) => !a.startsWith('--') && (catalogFlag === -1 || i !== catalogFlag + 1));
if (!tarball || (catalogFlag !== -1 && !catalogPath)) usage('give the @activepieces/shared tarball');

let files;
try {
  files = untar(readFileSync(tarball));
} catch (e) {
  usage(`cannot read ${tarball}: ${e.message}`);
}
const manifest = files.get('package/package.json');
const events = files.get(EVENTS_JS);
if (!manifest || !events) usage(`${tarball} is not a ${PACKAGE} tarball with ${EVENTS_JS}`);
const { name: packageName, version } = JSON.parse(manifest);
if (packageName !== PACKAGE) usage(`${tarball} is ${packageName}, not ${PACKAGE}`);

const released = eventNames(events);
const releaseSummaries = summaries(events);
const catalogText = readFileSync(catalogPath, 'utf8');
const catalog = JSON.parse(catalogText);
const catalogNames = new Set(catalog.events.map((e) => e.name));
const releaseNames = new Set(released.map((e) => e.name));
const missing = released.filter((e) => !catalogNames.has(e.name)).map((e) => e.name);
const extra = [...catalogNames].filter((n) => !releaseNames.has(n));

console.log(`${PACKAGE} ${version}: ${released.length} events; catalog: ${catalogNames.size}`);
for (const name of missing) console.log(`missing  ${name}`);
for (const name of extra) console.log(`extra    ${name}`);
for (const { constant, name } of released) {
  const entry = catalog.events.find((e) => e.name === name);
  const summary = releaseSummaries.get(constant);
  if (entry && summary && entry.summary !== summary) {
    console.log(`summary  ${name}: release says "${summary}", catalog "${entry.summary}"`);
  } else if (entry && summary === null) {
    console.log(`summary  ${name}: computed by the release; catalog "${entry.summary}"`);
  }
}

const recorded = catalog.release;
const sameRelease =
  recorded?.package === PACKAGE &&
  recorded?.version === version &&
  JSON.stringify(recorded?.eventNames) === JSON.stringify(released.map((e) => e.name));

if (record) {
  const { events: catalogEvents, release: _old, ...head } = catalog;
  const updated = {
    ...head,
    release: { package: PACKAGE, version, eventNames: released.map((e) => e.name) },
    events: catalogEvents,
  };
  writeFileSync(catalogPath, `${JSON.stringify(updated, null, 2)}\n`);
  console.log(`recorded ${PACKAGE} ${version} in ${catalogPath}`);
} else if (!sameRelease) {
  console.log(
    `recorded release is ${recorded ? `${recorded.package} ${recorded.version}` : 'absent'}; run with --record to record ${version}`,
  );
}

const ok = missing.length === 0 && extra.length === 0 && (record || sameRelease);
console.log(ok ? 'ok' : 'catalog differs from the release');
process.exit(ok ? 0 : 1);
