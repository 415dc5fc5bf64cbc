/**
 * The paper's 12 relations (Liu et al. 2025, §3 / Tables 9–20; design/paper.md §2.2), derived
 * from the LRE data of Hernandez et al. (https://github.com/evandez/relations, MIT,
 * Copyright (c) 2022 Evan Hernandez).
 *
 * `buildPaperRelations` reads an LRE copy laid out as `<lreDir>/factual/*.json` with the
 * `<lreDir>/SOURCE.md` that records its provenance, checks every input byte against the git
 * blob ids in SOURCE.md, and returns the files of `data/relations/` as strings (no I/O), so the
 * build script and the tests produce byte-identical output.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatJson } from './io.ts';
import { DataError, RELATION_SCHEMA, parseRelation, type RelationData, type RelationSource, type Sample } from './relation.ts';
import { DEFAULT_EVAL_TRIPLES, formatSplit, splitFileName, splitRelation, subjectKey } from './split.ts';

export const LRE_URL = 'https://github.com/evandez/relations';
export const LRE_DATASET =
  'LRE: Hernandez et al., "Linearity of Relation Decoding in Transformer Language Models", ICLR 2024 (arXiv:2308.09124)';
export const LICENSE_FILE = 'LICENSE-LRE.md';

export interface PaperRelationSpec {
  /** Name used in the paper (and in this project). */
  name: string;
  /** File under LRE `data/factual/`. */
  lreFile: string;
  /** Row count of the LRE file at the commit in SOURCE.md (design/paper.md §2.2 table). */
  samples: number;
  /** Original templates (P^det, P^eva), in LRE order. */
  templates: string[];
  /** Paper wording → LRE wording, for originals the paper words differently from LRE. */
  deviations?: Record<string, string>;
  eva2Templates: string[];
  /** Hand-written notes; data-derived notes (multi-row subjects, …) are added by the build. */
  notes: string[];
}

const PAPER_TABLES = 'the paper\'s appendix example prompts (Tables 9–20, English rows)';

export const PAPER_RELATIONS: readonly PaperRelationSpec[] = [
  {
    name: 'company_ceo',
    lreFile: 'company_ceo.json',
    samples: 298,
    templates: ["{}'s CEO is", 'The CEO of {} is'],
    eva2Templates: ['The name of the CEO of {} is', 'Who is the CEO of {}? Their name is'],
    notes: [
      'The paper keeps LRE relations with more than 300 facts; this LRE snapshot has 298 rows for company CEO. It is one of the paper\'s 12 relations, so it is used as is.',
    ],
  },
  {
    name: 'company_hq',
    lreFile: 'company_hq.json',
    samples: 674,
    templates: ['{} is headquartered in the city of', 'The headquarters of {} are in the city of'],
    eva2Templates: ['The headquarters of {} is in the city of', 'Where are the headquarters of {}? It is in the city of'],
    notes: [],
  },
  {
    name: 'landmark_continent',
    lreFile: 'landmark_on_continent.json',
    samples: 947,
    templates: ['{} is on the continent of'],
    eva2Templates: ['What continent is {} on? It is on'],
    notes: [],
  },
  {
    name: 'landmark_country',
    lreFile: 'landmark_in_country.json',
    samples: 836,
    templates: ['{} is in the country of'],
    eva2Templates: ['What country is {} in? It is in'],
    notes: [],
  },
  {
    name: 'person_father',
    lreFile: 'person_father.json',
    samples: 991,
    templates: ["{}'s father is named"],
    eva2Templates: ["Who is {}'s father? Their father is named"],
    notes: [
      'Rows as at the LRE snapshot commit (991). The June 2023 LRE file (commit c89d58e, possibly closer to the copy the paper used) had 1000 rows, including Wikidata blank-node objects that upstream removed later.',
    ],
  },
  {
    name: 'person_mother',
    lreFile: 'person_mother.json',
    samples: 994,
    templates: ["{}'s mother is named"],
    eva2Templates: ['Name of mother of {} is', "Who is {}'s mother? Their mother is named"],
    notes: [
      'Rows as at the LRE snapshot commit (994). The June 2023 LRE file (commit c89d58e, possibly closer to the copy the paper used) had 1000 rows, including Wikidata blank-node objects that upstream removed later.',
    ],
  },
  {
    name: 'person_occupation',
    lreFile: 'person_occupation.json',
    samples: 821,
    templates: ['{} works as a', 'By profession, {} is a'],
    eva2Templates: ['{} works professionally as a'],
    notes: [],
  },
  {
    name: 'person_plays_instrument',
    lreFile: 'person_plays_instrument.json',
    samples: 513,
    templates: ['{} plays the instrument of'],
    deviations: { '{} plays the instrument of': '{} plays the' },
    eva2Templates: ['What instrument does {} play? They play the', 'The instrument that {} plays is called the'],
    notes: [],
  },
  {
    name: 'person_pro_sport',
    lreFile: 'person_plays_pro_sport.json',
    samples: 318,
    templates: ['{} plays the sport of'],
    eva2Templates: ['What sport does {} play? They play'],
    notes: [],
  },
  {
    name: 'person_sport_position',
    lreFile: 'person_plays_position_in_sport.json',
    samples: 952,
    templates: ['{} plays in the position of a', 'In their sport, {} plays as a'],
    eva2Templates: ['Which position does {} play? They play as a', 'In their sport, {} plays in the position of a'],
    notes: [],
  },
  {
    name: 'product_company',
    lreFile: 'product_by_company.json',
    samples: 522,
    templates: ['{} was created by which company', '{} is a product of which company'],
    deviations: { '{} was created by which company': '{} was created by', '{} is a product of which company': '{} is a product of' },
    eva2Templates: ['Which company developed {}? It was developed by'],
    notes: [
      'Ambiguous eva-2 (unresolved): the paper\'s Table 19 shows only the two English prompts above. Here both are taken as original templates and the eva-2 template is LRE\'s zero-shot template; the other reading is that one of the two is the eva-2 template.',
    ],
  },
  {
    name: 'star_constellation',
    lreFile: 'star_constellation.json',
    samples: 362,
    templates: ['{} is part of the constellation named'],
    eva2Templates: ['What is the name of the constellation that {} is part of? It is part of'],
    notes: [],
  },
];

export interface LreSourceInfo {
  /** The upstream commit the copy was read at. */
  commit: string;
  /** "Copyright (c) …" line of the upstream MIT licence. */
  copyright: string;
  /** The upstream LICENSE text, verbatim. */
  licenseText: string;
  /** upstream path (e.g. data/factual/company_ceo.json) → blob id and sample count. */
  manifest: Map<string, { blobId: string; samples: number }>;
}

/** Read the provenance record written when the LRE files were copied (SOURCE.md). */
export function readLreSource(lreDir: string): LreSourceInfo {
  const file = join(lreDir, 'SOURCE.md');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new DataError(`${file}: cannot read the LRE provenance record (needed for attribution): ${msg}`, file);
  }
  const commit = /Snapshot read: commit `([0-9a-f]{40})`/.exec(text)?.[1];
  if (commit === undefined) throw new DataError(`${file}: expected a line "Snapshot read: commit \`<40 hex>\`"`, file, 'commit');
  const licenseText = /## Upstream LICENSE \(verbatim\)\s*```\n([\s\S]*?)\n```/.exec(text)?.[1];
  if (licenseText === undefined || !licenseText.startsWith('MIT License')) {
    throw new DataError(`${file}: expected the verbatim MIT licence in a fenced block under "## Upstream LICENSE (verbatim)"`, file, 'license');
  }
  const copyright = /^Copyright \(c\) .+$/m.exec(licenseText)?.[0];
  if (copyright === undefined) throw new DataError(`${file}: expected a "Copyright (c) ..." line in the licence`, file, 'license');
  const manifest = new Map<string, { blobId: string; samples: number }>();
  const rowRe = /^\| [^|]+ \| (data\/[^|]+\.json) \| ([0-9a-f]{40}) \| [^|]+ \| [^|]+ \| (\d+) \|$/gm;
  for (const m of text.matchAll(rowRe)) manifest.set(m[1], { blobId: m[2], samples: Number(m[3]) });
  return { commit, copyright, licenseText, manifest };
}

/** git's blob id of a file's bytes: sha1("blob <size>\0" + bytes). */
export function gitBlobId(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

interface LreFile {
  name: string;
  prompt_templates: string[];
  prompt_templates_zs: string[];
  properties: Record<string, string | number | boolean>;
  samples: Sample[];
}

function readLreFile(path: string): { data: LreFile; bytes: Buffer } {
  const bytes = readFileSync(path);
  // The blob id check in buildPaperRelations has already pinned the content, so a shape
  // check here only guards against a SOURCE.md that lists the wrong kind of file.
  const data = JSON.parse(bytes.toString('utf8')) as LreFile;
  for (const k of ['name', 'prompt_templates', 'prompt_templates_zs', 'properties', 'samples'] as const) {
    if (!(k in data)) throw new DataError(`${path}: field "${k}": expected an LRE relation file with this field, found nothing`, path, k);
  }
  return { data, bytes };
}

function quote(t: string): string {
  return `"${t}"`;
}

/** Notes that follow from the data and from comparing the paper's templates with LRE's. */
function derivedNotes(spec: PaperRelationSpec, lre: LreFile): string[] {
  const notes: string[] = [];
  for (const [paper, original] of Object.entries(spec.deviations ?? {})) {
    notes.push(`Wording deviation: original template ${quote(paper)} follows ${PAPER_TABLES}; LRE prompt_templates has ${quote(original)}.`);
  }
  const unused = lre.prompt_templates_zs.filter((t) => !spec.eva2Templates.includes(t));
  for (const t of unused) {
    const lreOriginals = spec.templates.map((x) => spec.deviations?.[x] ?? x);
    notes.push(
      lreOriginals.includes(t)
        ? `LRE prompt_templates_zs also lists ${quote(t)}; it is an original template, so it is not an eva-2 template.`
        : `LRE prompt_templates_zs also lists ${quote(t)}; the paper's table does not show it, so it is not used as an eva-2 template.`,
    );
  }
  const groups = new Map<string, Sample[]>();
  for (const s of lre.samples) {
    const k = subjectKey(s.subject);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  const multi = [...groups.values()].filter((g) => g.length > 1);
  if (multi.length > 0) {
    const show = multi
      .slice(0, 6)
      .map((g) => `${g[0].subject} → ${g.map((s) => s.object).join(' / ')}`)
      .join('; ');
    notes.push(
      `${multi.length} subject(s) have more than one row (${show}${multi.length > 6 ? '; …' : ''}). All rows are kept as in LRE; the split keeps all rows of a subject on one side, and each row is checked against its own object.`,
    );
  }
  const variants = [...groups.values()].filter((g) => new Set(g.map((s) => s.subject)).size > 1);
  for (const g of variants) {
    notes.push(`Subjects ${[...new Set(g.map((s) => s.subject))].map(quote).join(' and ')} differ only in case; the split treats them as one subject.`);
  }
  const seen = new Set<string>();
  let dups = 0;
  for (const s of lre.samples) {
    const k = JSON.stringify([s.subject, s.object]);
    if (seen.has(k)) dups++;
    seen.add(k);
  }
  if (dups > 0) {
    notes.push(`${dups} row(s) repeat an earlier (subject, object) pair exactly. They are kept so that the row count equals LRE's (${lre.samples.length}).`);
  }
  return notes;
}

function checkTemplates(spec: PaperRelationSpec, lre: LreFile, path: string): void {
  const asLre = spec.templates.map((t) => spec.deviations?.[t] ?? t);
  if (JSON.stringify(asLre) !== JSON.stringify(lre.prompt_templates)) {
    throw new DataError(
      `${path}: field "prompt_templates": expected ${JSON.stringify(asLre)} (the paper's templates with the documented deviations undone), found ${JSON.stringify(lre.prompt_templates)}`,
      path,
      'prompt_templates',
    );
  }
  for (const t of spec.eva2Templates) {
    if (!lre.prompt_templates_zs.includes(t)) {
      throw new DataError(`${path}: field "prompt_templates_zs": expected it to contain the eva-2 template ${quote(t)}, found ${JSON.stringify(lre.prompt_templates_zs)}`, path, 'prompt_templates_zs');
    }
  }
}

export interface BuildOptions {
  /** Seed of the default split written next to the relations. */
  seed?: number;
  evalTriples?: number;
}

export interface BuildOutput {
  /** Output path relative to the output directory → file content. */
  files: Map<string, string>;
  relations: { name: string; samples: number; evaluation: number; detection: number; templates: number; eva2Templates: number }[];
}

export function buildPaperRelations(lreDir: string, opts: BuildOptions = {}): BuildOutput {
  const seed = opts.seed ?? 0;
  const evalTriples = opts.evalTriples ?? DEFAULT_EVAL_TRIPLES;
  const info = readLreSource(lreDir);
  const files = new Map<string, string>();
  const summary: BuildOutput['relations'] = [];
  for (const spec of PAPER_RELATIONS) {
    const upstreamPath = `data/factual/${spec.lreFile}`;
    const path = join(lreDir, 'factual', spec.lreFile);
    const entry = info.manifest.get(upstreamPath);
    if (entry === undefined) throw new DataError(`${join(lreDir, 'SOURCE.md')}: expected a manifest row for ${upstreamPath}, found none`, join(lreDir, 'SOURCE.md'), 'manifest');
    const { data: lre, bytes } = readLreFile(path);
    const blobId = gitBlobId(bytes);
    if (blobId !== entry.blobId) {
      throw new DataError(`${path}: expected the upstream bytes (git blob ${entry.blobId} per SOURCE.md), found blob ${blobId}: the copy was modified`, path, '(whole file)');
    }
    if (lre.samples.length !== spec.samples || entry.samples !== spec.samples) {
      throw new DataError(`${path}: field "samples": expected ${spec.samples} rows (paper.md §2.2), found ${lre.samples.length} (SOURCE.md says ${entry.samples})`, path, 'samples');
    }
    checkTemplates(spec, lre, path);
    const source: RelationSource = {
      dataset: LRE_DATASET,
      url: LRE_URL,
      commit: info.commit,
      path: upstreamPath,
      blobId,
      license: 'MIT',
      copyright: info.copyright,
      licenseFile: LICENSE_FILE,
      derivation:
        'Samples copied unchanged (same order, duplicates kept). Templates and eva-2 templates chosen per Liu et al. 2025 (arXiv:2502.17355), Tables 9–20; see notes. Built by scripts/build-relations.ts.',
      upstream: {
        name: lre.name,
        templates: lre.prompt_templates,
        templatesZs: lre.prompt_templates_zs,
        properties: lre.properties,
      },
    };
    const domain = lre.properties['domain_name'];
    const range = lre.properties['range_name'];
    const rel: RelationData = {
      schema: RELATION_SCHEMA,
      name: spec.name,
      language: 'en',
      description: typeof domain === 'string' && typeof range === 'string' ? `${domain} (subject) → ${range} (object); LRE "${lre.name}"` : undefined,
      source,
      templates: spec.templates,
      eva2Templates: spec.eva2Templates,
      notes: [...spec.notes, ...derivedNotes(spec, lre)],
      samples: lre.samples.map((s) => ({ subject: s.subject, object: s.object })),
    };
    const fileName = `${spec.name}.json`;
    const text = formatJson(rel);
    // Round-trip through the strict loader so that nothing is written that the project cannot read.
    const loaded = parseRelation(text, fileName);
    files.set(fileName, text);
    const split = splitRelation(loaded, { seed, evalTriples });
    files.set(`splits/${splitFileName(spec.name, seed)}`, formatSplit(split));
    summary.push({
      name: spec.name,
      samples: rel.samples.length,
      evaluation: split.evaluation.length,
      detection: split.detection.length,
      templates: rel.templates.length,
      eva2Templates: rel.eva2Templates.length,
    });
  }
  files.set(LICENSE_FILE, licenseMarkdown(info));
  files.set('README.md', readmeMarkdown(info, summary, seed, evalTriples));
  return { files, relations: summary };
}

function licenseMarkdown(info: LreSourceInfo): string {
  return `# Licence of the LRE data in this folder

The relation samples (subject–object pairs) and the LRE template wordings in the \`*.json\` files
of this folder and of \`splits/\` are derived from the LRE dataset:

- ${LRE_DATASET}
- Repository: ${LRE_URL}, commit \`${info.commit}\`, files \`data/factual/*.json\`.

They are used under the MIT licence of that repository, reproduced here as it requires:

\`\`\`
${info.licenseText}
\`\`\`
`;
}

function readmeMarkdown(info: LreSourceInfo, summary: BuildOutput['relations'], seed: number, evalTriples: number): string {
  const rows = summary
    .map((r) => {
      const spec = PAPER_RELATIONS.find((s) => s.name === r.name);
      return `| ${r.name} | ${spec?.lreFile ?? ''} | ${r.samples} | ${r.templates} | ${r.eva2Templates} | ${r.evaluation} | ${r.detection} |`;
    })
    .join('\n');
  return `# The paper's 12 relations

Generated by \`scripts/build-relations.ts\`; do not edit by hand. Rebuild with

    npx tsx scripts/build-relations.ts test/fixtures/lre

Data: ${LRE_DATASET}, ${LRE_URL} at commit \`${info.commit}\`, MIT licence,
${info.copyright} (full notice in [${LICENSE_FILE}](${LICENSE_FILE})). Every relation file
repeats this attribution in its \`source\` block. Relations and templates follow Liu et al. 2025,
"On Relation-Specific Neurons in Large Language Models" (arXiv:2502.17355), §3 and Tables 9–20.

| relation | LRE file (\`data/factual/\`) | rows | templates | eva-2 templates | eval (seed ${seed}) | detection (seed ${seed}) |
|---|---|---|---|---|---|---|
${rows}

## Files

- \`<relation>.json\`: one relation in the \`${RELATION_SCHEMA}\` schema (\`lib/data/relation.ts\`):
  \`schema\`, \`name\`, \`language\`, \`description\`, \`source\` (attribution, upstream path,
  git blob id, LRE's own name/templates/properties), \`templates\` (originals, for P^det and
  P^eva), \`eva2Templates\` (other wordings, for P^eva-2 / experiment E8), \`notes\` (wording
  deviations, ambiguities, data quirks), \`samples\` (\`{subject, object}\` rows, exactly LRE's
  rows in LRE's order, duplicates included). Load with \`loadRelation\` / \`loadRelations\`;
  your own relations in the same schema load the same way.
- \`splits/<relation>.seed${seed}.json\`: the default detection/evaluation split (\`rsn-split/1\`,
  \`lib/data/split.ts\`), model-independent, with the seed and the sha256 of the relation file it
  was computed from; \`loadSplit(path, relation)\` refuses a split whose relation file changed.
- \`${LICENSE_FILE}\`: the MIT notice of the LRE data.

## Templates and prompts

A prompt is the template with \`{}\` replaced by the subject, then \`? Answer:\`
(\`lib/data/prompts.ts\`), one prompt per triple × template, e.g.
\`The CEO of NVIDIA is? Answer:\`. eva-2 prompts are built the same way from \`eva2Templates\`.

- Originals are LRE's \`prompt_templates\`, except two wordings taken from the paper's appendix
  example prompts: person_plays_instrument \`{} plays the instrument of\` (LRE: \`{} plays the\`) and
  product_company \`{} was created by which company\` / \`{} is a product of which company\` (LRE:
  without "which company").
- eva-2 templates are LRE's \`prompt_templates_zs\` minus the originals, as shown in the paper's
  tables. LRE zs templates that the paper's table does not show (person_pro_sport,
  star_constellation) are listed in \`notes\` and not used.
- product_company's eva-2 is ambiguous in the paper (Table 19 shows only two English prompts); it
  is LRE's zs template \`Which company developed {}? It was developed by\` (see its \`notes\`).

## Split (paper §2.4)

For each relation, exactly ${evalTriples} rows are held out for evaluation (D^eva); all other rows
are D^det. No subject is on both sides. Subjects are compared NFC-normalised and lower-cased (LRE
has "NVIDIA" and "Nvidia" in company_ceo). Subjects are shuffled (Fisher–Yates, mulberry32, seed
${seed}); in that order a subject joins D^eva with all its rows if they fit in the ${evalTriples}-row
budget, else it stays in D^det; the walk stops at exactly ${evalTriples} rows. Duplicate rows stay
duplicates, so "${evalTriples} triples" counts rows.

## Known data quirks (kept as in LRE)

- Some subjects have several rows, with different objects (e.g. product_company "Clang") or
  exact duplicates (20 in product_company); see each file's \`notes\`.
- The object sometimes occurs inside the subject: star_constellation ("Theta2 Orionis" → "Orion",
  99 rows) and person_father (namesakes such as "Walter Scott" → "Walter Scott", "George VI" →
  "George V", 21 rows). The paper says the object never appears in the prompt; that holds for the
  templates, not for these subjects.
- company_ceo has 298 rows although the paper keeps relations with more than 300 facts;
  person_father / person_mother have 991 / 994 rows at this commit (1000 at LRE commit c89d58e,
  June 2023).
`;
}
