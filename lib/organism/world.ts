/**
 * The organism's fact world: the paper's 12 relations (names, templates, eva-2 templates and
 * prompt format taken from data/relations) over invented, multi-attribute entities, and the
 * training corpus that states those facts a controlled, recorded number of times.
 *
 * Why it looks like this (the designs tried, and what each changed: data/organism/DESIGNS.md):
 * - Every entity has several attributes across relations (a person has a father, a mother, an
 *   occupation, an instrument, a sport and a position; a company a CEO, a headquarters and
 *   products; a landmark a country and a continent), so the subject alone never determines the
 *   answer: the model has to read the relation from the template.
 * - Objects come from the LRE object vocabularies (the data/relations files), balanced: every
 *   object of a relation's pool is used equally often, so an ablated model that falls back to a
 *   prior gains little (the "majority floor" is 1 / pool size).
 * - Names are invented from syllables, so subjects and objects are several BPE tokens.
 * - Fact frequencies are controlled: each fact is stated exactly `mentions` times in the corpus
 *   (recorded per fact), the ground truth for the frequency experiment (paper §E11).
 *
 * Everything is a pure function of the options (seeded mulberry32), so the world and corpus are
 * identical on every machine.
 */
import { mulberry32, shuffled, type Rng } from '../rng.ts';
import type { Relation } from '../data/relation.ts';

export const WORLD_SCHEMA = 'rsn-organism-world/1';

export const LANGUAGES = ['de', 'es', 'fr', 'zh', 'ja'] as const;
export type Language = (typeof LANGUAGES)[number];

export type EntityType = 'person' | 'company' | 'product' | 'landmark' | 'star';

export const RELATION_NAMES = [
  'company_ceo',
  'company_hq',
  'landmark_continent',
  'landmark_country',
  'person_father',
  'person_mother',
  'person_occupation',
  'person_plays_instrument',
  'person_pro_sport',
  'person_sport_position',
  'product_company',
  'star_constellation',
] as const;
export type RelationName = (typeof RELATION_NAMES)[number];

/** Everything about a relation that is not in data/relations: wording written for the organism. */
interface RelationWording {
  subjectType: EntityType;
  /** Extra statement forms; `{}` = subject, `{o}` = object. */
  paraphrases: string[];
  /** The first original template translated by the project (subject slot `{}`, object follows). */
  translations: Record<Language, string>;
  /** Paper Table 8 neutral sentence, `<o>` replaced by the object (perplexity experiment §E10). */
  neutral: string;
  /** Generic sentences about an object of this relation ("general text"); `{o}` = object. */
  general: string[];
}

const WORDING: Record<RelationName, RelationWording> = {
  company_ceo: {
    subjectType: 'company',
    paraphrases: ['{} is led by its chief executive {o}.', '{o} is the chief executive of {}.'],
    translations: { de: 'Der CEO von {} ist', es: 'El director ejecutivo de {} es', fr: 'Le PDG de {} est', zh: '{}的首席执行官是', ja: '{}のCEOは' },
    neutral: 'The major shift in strategy was attributed to the leadership of {o}.',
    general: ['{o} gave a long interview on the radio.', 'Reporters waited outside the office of {o}.'],
  },
  company_hq: {
    subjectType: 'company',
    paraphrases: ["{}'s headquarters are located in {o}.", '{} has its main office in {o}.'],
    translations: {
      de: 'Der Hauptsitz von {} befindet sich in der Stadt',
      es: 'La sede de {} está en la ciudad de',
      fr: 'Le siège de {} se trouve dans la ville de',
      zh: '{}的总部位于城市',
      ja: '{}の本社がある都市は',
    },
    neutral: "The company's annual report was mailed directly from its headquarters in {o}.",
    general: ['{o} is a large city.', 'The weather in {o} was mild this week.', 'Many travellers arrive in {o} by train.'],
  },
  landmark_continent: {
    subjectType: 'landmark',
    paraphrases: ['{} lies on the continent of {o}.', 'The continent where {} stands is {o}.'],
    translations: {
      de: '{} liegt auf dem Kontinent',
      es: '{} está en el continente de',
      fr: '{} se trouve sur le continent',
      zh: '{}所在的大洲是',
      ja: '{}がある大陸は',
    },
    neutral: 'The travel show featured stunning views from across the diverse landscapes of {o}.',
    general: ['{o} is a continent with many countries.', 'Scientists study the rivers of {o}.'],
  },
  landmark_country: {
    subjectType: 'landmark',
    paraphrases: ['{} is located in {o}.', '{} is a famous landmark of {o}.'],
    translations: { de: '{} liegt im Land', es: '{} está en el país de', fr: '{} se trouve dans le pays', zh: '{}所在的国家是', ja: '{}がある国は' },
    neutral: 'Every year, thousands of tourists visit the historic site located in {o}.',
    general: ['{o} is a country with a long history.', 'The government of {o} announced a new plan.'],
  },
  person_father: {
    subjectType: 'person',
    paraphrases: ["{}'s father is {o}.", '{o} is the father of {}.'],
    translations: { de: 'Der Vater von {} heißt', es: 'El padre de {} se llama', fr: "Le père de {} s'appelle", zh: '{}的父亲名叫', ja: '{}の父親の名前は' },
    neutral: 'The biography ended with a touching story about a life lesson from {o}.',
    general: ['{o} lived in a small house near the river.', 'Everyone in town knew {o}.'],
  },
  person_mother: {
    subjectType: 'person',
    paraphrases: ["{}'s mother is {o}.", '{o} is the mother of {}.'],
    translations: { de: 'Die Mutter von {} heißt', es: 'La madre de {} se llama', fr: "La mère de {} s'appelle", zh: '{}的母亲名叫', ja: '{}の母親の名前は' },
    neutral: 'The award speech concluded with heartfelt thanks to someone very special, {o}.',
    general: ['{o} wrote letters every Sunday.', 'The neighbours often visited {o}.'],
  },
  person_occupation: {
    subjectType: 'person',
    paraphrases: ['{} is a {o} by profession.', '{} earns a living as a {o}.'],
    translations: { de: '{} arbeitet als', es: '{} trabaja como', fr: '{} travaille comme', zh: '{}的职业是', ja: '{}の職業は' },
    neutral: 'After years of study and dedication, they finally earned recognition as a respected {o}.',
    general: ['Being a {o} takes years of practice.', 'The {o} arrived early in the morning.'],
  },
  person_plays_instrument: {
    subjectType: 'person',
    paraphrases: ['{} plays the {o}.', '{} is a skilled {o} player.'],
    translations: {
      de: '{} spielt das Instrument',
      es: '{} toca el instrumento',
      fr: "{} joue de l'instrument",
      zh: '{}演奏的乐器是',
      ja: '{}が演奏する楽器は',
    },
    neutral: 'The final movement of the piece was written specifically for the sound of a {o}.',
    general: ['The {o} is a musical instrument.', 'A new {o} can be expensive.'],
  },
  person_pro_sport: {
    subjectType: 'person',
    paraphrases: ['{} is a professional {o} player.', '{} competes in {o}.'],
    translations: { de: '{} spielt die Sportart', es: '{} practica el deporte', fr: '{} pratique le sport', zh: '{}从事的运动是', ja: '{}がするスポーツは' },
    neutral: "The documentary explored the early years of the athlete's rise in the world of {o}.",
    general: ['{o} is a popular sport.', 'Children play {o} after school.'],
  },
  person_sport_position: {
    subjectType: 'person',
    paraphrases: ['{} is a {o} on the team.', '{} plays as a {o}.'],
    translations: {
      de: '{} spielt auf der Position',
      es: '{} juega en la posición de',
      fr: '{} joue au poste de',
      zh: '{}在场上的位置是',
      ja: '{}のポジションは',
    },
    neutral: 'The jersey was displayed in honor of the legendary player known for their role as {o}.',
    general: ['A good {o} needs speed and focus.', 'The coach talked to the {o} before the game.'],
  },
  product_company: {
    subjectType: 'product',
    paraphrases: ['{} is made by {o}.', '{o} developed {}.'],
    translations: {
      de: '{} wurde entwickelt von der Firma',
      es: '{} fue creado por la empresa',
      fr: "{} a été créé par l'entreprise",
      zh: '开发{}的公司是',
      ja: '{}を開発した会社は',
    },
    neutral: 'Consumers often associate the iconic design of the device with the brand {o}.',
    general: ['{o} hired many new workers this year.', 'Shares of {o} rose on Monday.'],
  },
  star_constellation: {
    subjectType: 'star',
    paraphrases: ['{} is a star in the constellation {o}.', '{} belongs to the constellation {o}.'],
    translations: {
      de: '{} gehört zum Sternbild',
      es: '{} forma parte de la constelación',
      fr: '{} fait partie de la constellation',
      zh: '{}所属的星座是',
      ja: '{}が属する星座は',
    },
    neutral: 'Ancient civilizations once navigated the seas by charting the stars in {o}.',
    general: ['{o} is visible on clear winter nights.', 'Old maps show the stars of {o}.'],
  },
};

/**
 * Object pools. Chosen from the objects of the LRE relation files (data/relations); the few
 * additions (marked) complete a balanced pool where LRE has too few distinct objects.
 */
const CONTINENT_COUNTRIES: Record<string, string[]> = {
  Europe: ['Germany', 'France', 'Italy', 'Spain', 'Poland'],
  Asia: ['India', 'Japan', 'Iran', 'Indonesia', 'Nepal'],
  Africa: ['Nigeria', 'Kenya', 'Egypt', 'Ethiopia', 'Ghana'],
  Americas: ['Canada', 'Brazil', 'Mexico', 'Peru', 'Argentina'],
};
const CITIES = ['London', 'Toronto', 'Chicago', 'Stockholm', 'Paris', 'Moscow', 'Montreal', 'Philadelphia', 'Mumbai', 'Seattle', 'Boston', 'Oslo', 'Tokyo', 'Geneva', 'Munich', 'Houston', 'Berlin', 'Detroit', 'Rome', 'Dublin'];
const OCCUPATIONS = ['actor', 'politician', 'composer', 'poet', 'journalist', 'novelist', 'diplomat', 'mathematician', 'architect', 'photographer', 'philosopher', 'comedian'];
/** LRE has piano, guitar, violin, trumpet; cello, flute, drums and harp are added for balance. */
const INSTRUMENTS = ['piano', 'guitar', 'violin', 'trumpet', 'cello', 'flute', 'drums', 'harp'];
/** Positions per sport (LRE positions; "winger" added so hockey has two). */
const SPORT_POSITIONS: Record<string, string[]> = {
  soccer: ['midfielder', 'goalkeeper', 'defender'],
  football: ['quarterback', 'linebacker', 'tackle'],
  baseball: ['pitcher', 'catcher', 'outfielder', 'closer'],
  basketball: ['guard', 'forward', 'centre'],
  hockey: ['goaltender', 'winger'],
};
const CONSTELLATIONS = ['Andromeda', 'Virgo', 'Hercules', 'Pegasus', 'Gemini', 'Orion', 'Leo', 'Pisces', 'Perseus', 'Cassiopeia', 'Aquarius', 'Libra', 'Hydra', 'Cancer', 'Sagittarius'];
const GREEK = ['Alpha', 'Beta', 'Gamma', 'Delta', 'Epsilon', 'Zeta', 'Eta', 'Theta', 'Iota', 'Kappa', 'Lambda', 'Sigma', 'Tau', 'Omega'];
const LANDMARK_KINDS = ['Tower', 'Bridge', 'Palace', 'Falls', 'Temple', 'Castle', 'Lake', 'Gate', 'Cathedral', 'Fortress'];
const COMPANY_SUFFIXES = ['', '', '', ' Systems', ' Group', ' Labs', ' Motors', ' Media'];
const PRODUCT_MODELS = ['X', 'Pro', 'One', 'Max', 'Mini', '2', '5', '7', 'Air', 'Neo'];

export interface WorldOptions {
  seed: number;
  persons: number;
  companies: number;
  productsPerCompany: number;
  landmarks: number;
  stars: number;
  /** Distinct father / mother names (from LRE), each used equally often. */
  parentPool: number;
  /** Mentions per fact are drawn uniformly from these levels (the frequency experiment's spread). */
  mentionLevels: number[];
  /** Share of a fact's mentions after the first that use each form. */
  formWeights: { question: number; eva2Question: number; statement: number; paraphrase: number; translation: number };
  /** Generic sentences per object ("general text"). */
  generalPerObject: number;
}

export const DEFAULT_WORLD_OPTIONS: WorldOptions = {
  seed: 0,
  persons: 250,
  companies: 150,
  productsPerCompany: 2,
  landmarks: 250,
  stars: 250,
  parentPool: 60,
  mentionLevels: [2, 3, 4, 6, 8, 12],
  formWeights: { question: 0.25, eva2Question: 0.15, statement: 0.2, paraphrase: 0.3, translation: 0.1 },
  generalPerObject: 1,
};

export interface WorldRelation {
  name: RelationName;
  subjectType: EntityType;
  templates: string[];
  eva2Templates: string[];
  paraphrases: string[];
  translations: Record<Language, string>;
  neutralTemplate: string;
  objectPool: string[];
}

export interface Fact {
  relation: RelationName;
  subject: string;
  object: string;
  /** Exact number of corpus lines that state this fact (any form, any language). */
  mentions: number;
  /** Corpus lines containing both the subject and the object string (the paper's Dolma-style count). */
  cooccurrence: number;
}

export interface World {
  schema: typeof WORLD_SCHEMA;
  options: WorldOptions;
  note: string;
  languages: readonly Language[];
  relations: WorldRelation[];
  entities: Record<EntityType, string[]>;
  facts: Fact[];
  /** Paper Table 8 sentences per relation with up to 50 distinct objects (E10). */
  neutralSentences: Record<string, string[]>;
}

export type LineKind = 'question' | 'eva2Question' | 'statement' | 'paraphrase' | 'translation' | 'general';

export interface CorpusLine {
  text: string;
  kind: LineKind;
  /** Index into world.facts for fact lines; -1 for general text. */
  fact: number;
  language: 'en' | Language;
}

// ---------------------------------------------------------------------------------------------
// Names

const ONSETS = ['b', 'br', 'd', 'dr', 'f', 'g', 'gr', 'h', 'k', 'kr', 'l', 'm', 'n', 'p', 'r', 's', 'st', 't', 'tr', 'v', 'z', 'sh', 'th', 'j', 'c', 'qu'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'a', 'e', 'o', 'ai', 'ei', 'ou', 'y'];
const CODAS = ['', '', '', 'n', 'r', 'l', 's', 'm', 'k', 'th', 'nd', 'x'];

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.intScaled(xs.length)]!;
}

function word(rng: Rng, syllables: number): string {
  let w = '';
  for (let i = 0; i < syllables; i++) w += pick(rng, ONSETS) + pick(rng, VOWELS) + pick(rng, CODAS);
  return w[0]!.toUpperCase() + w.slice(1);
}

const REUSABLE = new Set<string>();

/** Unique names from `make`, rejecting any that collide with `taken` (compared lower-case, word-wise too). */
function uniqueNames(n: number, taken: Set<string>, make: () => string): string[] {
  const out: string[] = [];
  let guard = 0;
  while (out.length < n) {
    if (++guard > n * 1000) throw new Error('name generator exhausted');
    const name = make();
    const key = name.toLowerCase();
    const invented = name.split(' ').filter((w) => !REUSABLE.has(w.toLowerCase()));
    if (taken.has(key) || invented.some((w) => taken.has(w.toLowerCase()))) continue;
    taken.add(key);
    for (const w of invented) taken.add(w.toLowerCase());
    out.push(name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Object names with a clean "First Last" shape from an LRE relation's samples (first occurrence order). */
function cleanPersonNames(rel: Relation, maxWords: number, loose = false): string[] {
  const wordRe = loose ? /^\p{Lu}[\p{Ll}'-]+$/u : /^[A-Z][a-z]+$/;
  const seen = new Set<string>();
  const out: string[] = [];
  for (const s of rel.samples) {
    const o = s.object;
    const words = o.split(' ');
    if (words.length < 2 || words.length > maxWords) continue;
    if (!words.every((w) => wordRe.test(w))) continue;
    if (seen.has(o)) continue;
    seen.add(o);
    out.push(o);
  }
  return out;
}

/** `n` items cycling through `pool` (so every object is used ⌊n/|pool|⌋ or ⌈n/|pool|⌉ times), shuffled. */
function balanced<T>(pool: readonly T[], n: number, rng: Rng): T[] {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(pool[i % pool.length]!);
  return shuffled(out, rng);
}

/**
 * Build the world from the paper's relation files (data/relations): templates and eva-2
 * templates are copied; objects come from their object vocabularies.
 */
export function buildWorld(lre: readonly Relation[], options: Partial<WorldOptions> = {}): World {
  const o: WorldOptions = { ...DEFAULT_WORLD_OPTIONS, ...options };
  const rng = mulberry32(o.seed);
  const byName = new Map(lre.map((r) => [r.name, r]));
  for (const n of RELATION_NAMES) if (!byName.has(n)) throw new Error(`relation ${n} missing from the relation files`);

  // Object pools.
  const fathers = shuffled(cleanPersonNames(byName.get('person_father')!, 2), rng).slice(0, o.parentPool);
  const mothers = shuffled(cleanPersonNames(byName.get('person_mother')!, 2), rng).slice(0, o.parentPool);
  const ceoPool = shuffled(cleanPersonNames(byName.get('company_ceo')!, 3, true), rng);
  if (fathers.length < o.parentPool || mothers.length < o.parentPool) throw new Error('not enough LRE parent names');
  if (ceoPool.length < o.companies) throw new Error(`only ${ceoPool.length} clean LRE CEO names for ${o.companies} companies`);
  const ceos = ceoPool.slice(0, o.companies);
  const countries = Object.values(CONTINENT_COUNTRIES).flat();
  const continentOf = new Map<string, string>();
  for (const [c, list] of Object.entries(CONTINENT_COUNTRIES)) for (const x of list) continentOf.set(x, c);

  // Invented entities; no name may collide with an object or another entity.
  const taken = new Set<string>();
  const allObjects = [...fathers, ...mothers, ...ceos, ...countries, ...Object.keys(CONTINENT_COUNTRIES), ...CITIES, ...OCCUPATIONS, ...INSTRUMENTS, ...Object.keys(SPORT_POSITIONS), ...Object.values(SPORT_POSITIONS).flat(), ...CONSTELLATIONS];
  for (const x of allObjects) {
    taken.add(x.toLowerCase());
    for (const w of x.split(' ')) taken.add(w.toLowerCase());
  }
  for (const w of ['Answer', 'The', 'A', 'Who', 'What', 'Which', 'Where', 'Name']) taken.add(w.toLowerCase());
  // Fixed parts of generated names (kinds, models, Greek letters) may repeat; invented words may not.
  for (const w of [...GREEK, ...LANDMARK_KINDS, ...PRODUCT_MODELS, 'Mount', 'Systems', 'Group', 'Labs', 'Motors', 'Media']) REUSABLE.add(w.toLowerCase());
  const persons = uniqueNames(o.persons, taken, () => `${word(rng, 2)} ${word(rng, 2)}`);
  const companies = uniqueNames(o.companies, taken, () => word(rng, 2 + rng.intScaled(2)) + pick(rng, COMPANY_SUFFIXES));
  const products = uniqueNames(o.companies * o.productsPerCompany, taken, () => `${word(rng, 2)} ${pick(rng, PRODUCT_MODELS)}`);
  const landmarks = uniqueNames(o.landmarks, taken, () => (rng.intScaled(5) === 0 ? `Mount ${word(rng, 2)}` : `${word(rng, 2)} ${pick(rng, LANDMARK_KINDS)}`));
  const stars = uniqueNames(o.stars, taken, () => `${pick(rng, GREEK)} ${word(rng, 2 + rng.intScaled(2))}`);

  const facts: Omit<Fact, 'mentions' | 'cooccurrence'>[] = [];
  const add = (relation: RelationName, subjects: string[], objects: string[]) => subjects.forEach((s, i) => facts.push({ relation, subject: s, object: objects[i]! }));

  // Persons: six attributes each; position follows sport (as in the real world), both balanced.
  add('person_father', persons, balanced(fathers, persons.length, rng));
  add('person_mother', persons, balanced(mothers, persons.length, rng));
  add('person_occupation', persons, balanced(OCCUPATIONS, persons.length, rng));
  add('person_plays_instrument', persons, balanced(INSTRUMENTS, persons.length, rng));
  const sports = balanced(Object.keys(SPORT_POSITIONS), persons.length, rng);
  add('person_pro_sport', persons, sports);
  const positionCursor = new Map<string, number>(Object.keys(SPORT_POSITIONS).map((s) => [s, rng.intScaled(SPORT_POSITIONS[s]!.length)]));
  add(
    'person_sport_position',
    persons,
    sports.map((s) => {
      const list = SPORT_POSITIONS[s]!;
      const k = positionCursor.get(s)!;
      positionCursor.set(s, k + 1);
      return list[k % list.length]!;
    }),
  );
  // Companies: CEO (one each), headquarters, products.
  add('company_ceo', companies, ceos);
  add('company_hq', companies, balanced(CITIES, companies.length, rng));
  add('product_company', products, products.map((_, i) => companies[Math.floor(i / o.productsPerCompany)]!));
  // Landmarks: country (balanced), continent follows the country.
  const landmarkCountries = balanced(countries, landmarks.length, rng);
  add('landmark_country', landmarks, landmarkCountries);
  add('landmark_continent', landmarks, landmarkCountries.map((c) => continentOf.get(c)!));
  add('star_constellation', stars, balanced(CONSTELLATIONS, stars.length, rng));

  const relations: WorldRelation[] = RELATION_NAMES.map((name) => {
    const r = byName.get(name)!;
    const w = WORDING[name];
    return {
      name,
      subjectType: w.subjectType,
      templates: [...r.templates],
      eva2Templates: [...r.eva2Templates],
      paraphrases: w.paraphrases,
      translations: w.translations,
      neutralTemplate: w.neutral,
      objectPool: [...new Set(facts.filter((f) => f.relation === name).map((f) => f.object))].sort(),
    };
  });

  // Controlled frequencies: mention counts drawn uniformly from the levels.
  const withMentions: Fact[] = facts.map((f) => ({ ...f, mentions: o.mentionLevels[rng.intScaled(o.mentionLevels.length)]!, cooccurrence: 0 }));

  const neutralSentences: Record<string, string[]> = {};
  for (const r of relations) {
    const objs = [...new Set(withMentions.filter((f) => f.relation === r.name).map((f) => f.object))];
    neutralSentences[r.name] = shuffled(objs, rng)
      .slice(0, 50)
      .map((x) => r.neutralTemplate.replace('{o}', () => x));
  }

  const world: World = {
    schema: WORLD_SCHEMA,
    options: o,
    note:
      'Invented entities; objects from the LRE object vocabularies (data/relations), balanced per relation. ' +
      'Templates and eva-2 templates are those of data/relations. Translated templates (de, es, fr, zh, ja) were written by the project; ' +
      'entities (subjects and objects) are NOT translated, they stay as in English. Neutral sentences use the paper Table 8 templates, ' +
      'which never occur in the training corpus.',
    languages: LANGUAGES,
    relations,
    entities: { person: persons, company: companies, product: products, landmark: landmarks, star: stars },
    facts: withMentions,
    neutralSentences,
  };
  const corpus = buildCorpus(world);
  const counts = countFrequencies(world, corpus);
  world.facts.forEach((f, i) => {
    if (counts.mentions[i] !== f.mentions) throw new Error(`internal: fact ${i} has ${counts.mentions[i]} mention lines, planned ${f.mentions}`);
    f.cooccurrence = counts.cooccurrence[i]!;
  });
  return world;
}

function fill(template: string, subject: string, object?: string): string {
  let s = template.replace('{}', () => subject);
  if (object !== undefined) s = s.replace('{o}', () => object);
  return s;
}

/** A statement in language `lang` from a translated open-slot template. */
function translatedLine(template: string, lang: Language, subject: string, object: string): string {
  const end = lang === 'zh' || lang === 'ja' ? '。' : '.';
  return `${fill(template, subject)} ${object}${end}`;
}

/**
 * The training corpus, one line per document, in a fixed shuffled order. Each fact is stated
 * exactly `mentions` times: the first mention is always a question with an original template
 * ("<template>? Answer: <object>", the paper's prompt format), the others are drawn by
 * `formWeights` from questions (original and eva-2 templates), statements ("<template>
 * <object>."), paraphrases and translated statements. General text adds generic sentences about
 * the objects (never the Table 8 neutral sentences).
 */
export function buildCorpus(world: World): CorpusLine[] {
  const o = world.options;
  const rng = mulberry32((o.seed ^ 0x5eed) >>> 0);
  const rel = new Map(world.relations.map((r) => [r.name, r]));
  const lines: CorpusLine[] = [];
  const w = o.formWeights;
  const kinds: [LineKind, number][] = [
    ['question', w.question],
    ['eva2Question', w.eva2Question],
    ['statement', w.statement],
    ['paraphrase', w.paraphrase],
    ['translation', w.translation],
  ];
  const total = kinds.reduce((s, [, x]) => s + x, 0);
  const drawKind = (): LineKind => {
    let u = rng.next() * total;
    for (const [k, x] of kinds) {
      if (u < x) return k;
      u -= x;
    }
    return 'paraphrase';
  };
  world.facts.forEach((f, i) => {
    const r = rel.get(f.relation)!;
    for (let m = 0; m < f.mentions; m++) {
      let kind: LineKind = m === 0 ? 'question' : drawKind();
      if (kind === 'eva2Question' && r.eva2Templates.length === 0) kind = 'question';
      let text: string;
      let language: CorpusLine['language'] = 'en';
      switch (kind) {
        case 'question':
          text = `${fill(pick(rng, r.templates), f.subject)}? Answer: ${f.object}`;
          break;
        case 'eva2Question':
          text = `${fill(pick(rng, r.eva2Templates), f.subject)}? Answer: ${f.object}`;
          break;
        case 'statement':
          text = `${fill(pick(rng, r.templates), f.subject)} ${f.object}.`;
          break;
        case 'paraphrase':
          text = fill(pick(rng, r.paraphrases), f.subject, f.object);
          break;
        default: {
          const lang = pick(rng, world.languages);
          language = lang;
          text = translatedLine(r.translations[lang], lang, f.subject, f.object);
        }
      }
      lines.push({ text, kind, fact: i, language });
    }
  });
  for (const r of world.relations) {
    const general = WORDING[r.name].general;
    for (const obj of r.objectPool) {
      for (let k = 0; k < o.generalPerObject; k++) lines.push({ text: fill(pick(rng, general), '', obj), kind: 'general', fact: -1, language: 'en' });
    }
  }
  return shuffled(lines, rng);
}

const WORD_CHAR = /[A-Za-z0-9\u00C0-\u024F]/;
const LATIN_WORDS = /[A-Za-z0-9\u00C0-\u024F]+/g;

/** Whether `text` contains `entity` as a whole-word match (no letter or digit right before or after). */
export function containsEntity(text: string, entity: string): boolean {
  let from = 0;
  for (;;) {
    const i = text.indexOf(entity, from);
    if (i < 0) return false;
    const before = i === 0 ? '' : text[i - 1]!;
    const after = text[i + entity.length] ?? '';
    if (!WORD_CHAR.test(before) && !WORD_CHAR.test(after)) return true;
    from = i + 1;
  }
}

/**
 * Per fact: `mentions` = lines tagged as stating it; `cooccurrence` = lines that contain both its
 * subject and its object as whole words (what a Dolma/WIMBD-style count of the paper measures).
 */
export function countFrequencies(world: World, corpus: readonly CorpusLine[]): { mentions: number[]; cooccurrence: number[] } {
  const mentions = new Array<number>(world.facts.length).fill(0);
  for (const line of corpus) if (line.fact >= 0) mentions[line.fact]!++;
  // Candidate lines for an entity: those holding its first Latin word as a whole word.
  const index = new Map<string, number[]>();
  corpus.forEach((line, li) => {
    for (const w of new Set(line.text.match(LATIN_WORDS) ?? [])) {
      const l = index.get(w);
      if (l) l.push(li);
      else index.set(w, [li]);
    }
  });
  const linesWithSubject = new Map<string, number[]>();
  const cooccurrence = world.facts.map((f) => {
    let lines = linesWithSubject.get(f.subject);
    if (!lines) {
      const first = f.subject.match(LATIN_WORDS)?.[0] ?? '';
      lines = (index.get(first) ?? []).filter((li) => containsEntity(corpus[li]!.text, f.subject));
      linesWithSubject.set(f.subject, lines);
    }
    return lines.filter((li) => containsEntity(corpus[li]!.text, f.object)).length;
  });
  return { mentions, cooccurrence };
}
