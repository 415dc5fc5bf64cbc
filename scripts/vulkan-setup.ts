/**
 * Makes the webgpu backend testable on a machine without a GPU: Mesa's software Vulkan driver
 * (lavapipe) and the Vulkan loader, from Debian bookworm-backports (Mesa 25; Dawn rejects
 * bookworm's own Mesa 22.3). Installed with apt-get when running as root on Debian 12; otherwise
 * the exact commands are printed. A GPU machine needs its vendor's Vulkan driver instead (NVIDIA:
 * the driver's ICD plus libvulkan1); this script does not touch it.
 *
 *   npx tsx scripts/vulkan-setup.ts [--no-install]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';

const BACKPORTS_FILE = '/etc/apt/sources.list.d/bookworm-backports.sources';
const BACKPORTS_SOURCE = `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;
const PACKAGES = ['mesa-vulkan-drivers', 'libvulkan1'];
/** Dawn needs Vulkan 1.1 features that lavapipe gained after Mesa 22.3. */
const MIN_MESA_MAJOR = 23;

export function vulkanInstallCommands(): string[] {
  return [
    `printf '${BACKPORTS_SOURCE.replace(/\n/g, '\\n')}' > ${BACKPORTS_FILE}`,
    'apt-get update',
    `apt-get install -y --no-install-recommends -t bookworm-backports ${PACKAGES.join(' ')}`,
  ];
}

/** The installed version of a Debian package, or null (a removed package whose config files remain counts as absent). */
function installedVersion(pkg: string): string | null {
  const r = spawnSync('dpkg-query', ['-W', '-f=${db:Status-Abbrev} ${Version}', pkg], { encoding: 'utf8' });
  const m = /^ii\s+(\S+)/.exec(r.stdout ?? '');
  return r.status === 0 && m ? m[1]! : null;
}

function isBookworm(): boolean {
  try {
    return /^VERSION_CODENAME=bookworm$/m.test(readFileSync('/etc/os-release', 'utf8'));
  } catch {
    return false;
  }
}

export interface VulkanSetup {
  ok: boolean;
  installed: boolean;
  message: string;
}

/** Mesa's Vulkan drivers ≥ 23 and the loader present → ok; else install (root, Debian 12) or say how. */
export function ensureVulkan(opts: { install?: boolean; log?: (line: string) => void } = {}): VulkanSetup {
  const log = opts.log ?? ((l: string) => console.log(l));
  const mesa = installedVersion('mesa-vulkan-drivers');
  const loader = installedVersion('libvulkan1');
  const mesaMajor = mesa ? Number(/^(?:\d+:)?(\d+)/.exec(mesa)?.[1] ?? 0) : 0;
  if (loader && mesaMajor >= MIN_MESA_MAJOR) return { ok: true, installed: false, message: `Vulkan: mesa-vulkan-drivers ${mesa}, libvulkan1 ${loader}` };
  const why = !mesa ? 'mesa-vulkan-drivers is not installed' : mesaMajor < MIN_MESA_MAJOR ? `mesa-vulkan-drivers ${mesa} is too old for Dawn (needs ≥ ${MIN_MESA_MAJOR}, from bookworm-backports)` : 'libvulkan1 is not installed';
  const how = `the webgpu tests need a Vulkan adapter: ${why}. As root on Debian 12:\n  ${vulkanInstallCommands().join('\n  ')}`;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (opts.install === false || !root || !isBookworm() || spawnSync('apt-get', ['--version']).status !== 0) return { ok: false, installed: false, message: how };
  log(`Vulkan: ${why}; installing ${PACKAGES.join(' ')} from bookworm-backports`);
  if (!existsSync(BACKPORTS_FILE)) writeFileSync(BACKPORTS_FILE, BACKPORTS_SOURCE);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0;
  if (!apt(['update']) || !apt(['install', '-y', '--no-install-recommends', '-t', 'bookworm-backports', ...PACKAGES])) {
    return { ok: false, installed: false, message: `apt-get could not install the Vulkan driver. ${how}` };
  }
  return { ok: true, installed: true, message: `Vulkan: installed mesa-vulkan-drivers ${installedVersion('mesa-vulkan-drivers')}, libvulkan1 ${installedVersion('libvulkan1')}` };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseScriptCommandLine(process.argv.slice(2), { 'no-install': { type: 'boolean', default: false } });
  const r = ensureVulkan({ install: !values['no-install'] });
  (r.ok ? console.log : console.error)(r.message);
  process.exit(r.ok ? 0 : 1);
}
