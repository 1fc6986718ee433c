import { z } from 'zod';
import { inputError } from '../errors.js';
import type { ManifestContainer, WorkloadManifest } from './manifest.js';

/**
 * The OCI runtime bundle configuration (config.json, runtime-spec v1.2.0) for each container of a
 * manifest, with the settings the manifest implies and nothing weaker by accident: capabilities
 * reduced to what is added back, the seccomp allow-list profile, read-only root, an explicit
 * non-root user, no_new_privs, and /proc and /sys paths masked. Secrets never enter config.json
 * (it is a file): file secrets are bind mounts of the agent's tmpfs, environment secrets are
 * returned separately for the agent to inject in memory. A privileged container is refused.
 */

export const RUNTIME_SPEC_VERSION = '1.2.0';

// runtime-spec v1.2.0 config.md / config-linux.md, for the fields we emit. Strict: a field we do
// not mean to write is an error in our generator, not something a runtime may interpret.
const mount = z.strictObject({ destination: z.string().startsWith('/'), type: z.string().min(1).optional(), source: z.string().min(1).optional(), options: z.array(z.string()).optional() });
const capList = z.array(z.string().regex(/^CAP_[A-Z_]+$/));
const syscallArg = z.strictObject({ index: z.number().int().min(0).max(5), value: z.number().int().min(0), valueTwo: z.number().int().min(0).optional(), op: z.enum(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']) });
const syscallRule = z.strictObject({ names: z.array(z.string().min(1)).min(1), action: z.enum(['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO']), errnoRet: z.number().int().optional(), args: z.array(syscallArg).optional() });
export const runtimeConfigSchema = z.strictObject({
  ociVersion: z.literal(RUNTIME_SPEC_VERSION),
  process: z.strictObject({
    terminal: z.boolean(),
    user: z.strictObject({ uid: z.number().int().min(0), gid: z.number().int().min(0), additionalGids: z.array(z.number().int().min(0)).optional() }),
    args: z.array(z.string()).min(1),
    env: z.array(z.string().regex(/^[^=]+=/)),
    cwd: z.string().startsWith('/'),
    capabilities: z.strictObject({ bounding: capList, effective: capList, permitted: capList }),
    rlimits: z.array(z.strictObject({ type: z.string().regex(/^RLIMIT_[A-Z]+$/), hard: z.number().int().min(0), soft: z.number().int().min(0) })),
    noNewPrivileges: z.boolean(),
    apparmorProfile: z.string().optional(),
    selinuxLabel: z.string().optional(),
  }),
  root: z.strictObject({ path: z.string().min(1), readonly: z.boolean() }),
  hostname: z.string().min(1),
  mounts: z.array(mount),
  linux: z.strictObject({
    namespaces: z.array(z.strictObject({ type: z.enum(['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup']) })),
    resources: z
      .strictObject({
        memory: z.strictObject({ limit: z.number().int().positive() }).optional(),
        cpu: z.strictObject({ quota: z.number().int().positive(), period: z.number().int().positive() }).optional(),
        pids: z.strictObject({ limit: z.number().int().positive() }).optional(),
      })
      .optional(),
    sysctl: z.record(z.string(), z.string()).optional(),
    seccomp: z
      .strictObject({
        defaultAction: z.enum(['SCMP_ACT_ERRNO', 'SCMP_ACT_KILL_PROCESS']),
        defaultErrnoRet: z.number().int().optional(),
        architectures: z.array(z.string().startsWith('SCMP_ARCH_')).min(1),
        syscalls: z.array(syscallRule),
      })
      .optional(),
    maskedPaths: z.array(z.string().startsWith('/')),
    readonlyPaths: z.array(z.string().startsWith('/')),
  }),
});
export type RuntimeConfig = z.output<typeof runtimeConfigSchema>;

// The paths runc and containerd mask and make read-only by default.
const MASKED = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'];
const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/**
 * An allow-list seccomp profile: everything not named fails with ENOSYS (so that libcs fall back
 * rather than crash). The list follows the syscalls Docker's default profile allows to every
 * container without added capabilities, minus the ones it gates on CAP_SYS_ADMIN and friends
 * (mount, unshare, setns, bpf, perf_event_open, ptrace, kexec, module loading, keyrings...).
 * clone is allowed only without namespace flags (a new user namespace is the usual first step of
 * a kernel exploit); clone3 cannot be filtered by its flags (they sit behind a pointer), so it
 * fails with ENOSYS and libc falls back to clone, as under Docker.
 */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const ALLOWED_SYSCALLS = `accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close
close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid
getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
getxattr getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2
pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp
select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid
setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr
setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair splice
stat stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev arch_prctl modify_ldt`
  .split(/\s+/)
  .filter(Boolean);

// Syscalls Docker's profile allows only with the capability that governs them.
const CAP_SYSCALLS: Readonly<Record<string, readonly string[]>> = {
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'],
  CAP_SYS_TIME: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'],
  CAP_SYS_CHROOT: ['chroot'],
  CAP_SYSLOG: ['syslog'],
  CAP_SYS_RESOURCE: [],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
};

export function defaultSeccompProfile(caps: readonly string[] = []): NonNullable<RuntimeConfig['linux']['seccomp']> {
  const extra = caps.flatMap((c) => CAP_SYSCALLS[c] ?? []);
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 38,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: [
      { names: [...ALLOWED_SYSCALLS, ...extra], action: 'SCMP_ACT_ALLOW' },
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    ],
  };
}

const UNITS: Readonly<Record<string, number>> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) throw inputError('WORKLOAD_BAD_QUANTITY', `"${q}" is not a quantity such as 512Mi`);
  return Math.floor(Number(m[1]) * (UNITS[m[2] ?? ''] as number));
}

/** The parts of an image configuration (OCI image-spec config.config) the runtime config takes defaults from. */
export interface ImageDefaults {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
}

export interface ContainerRuntime {
  container: string;
  config: RuntimeConfig;
  /** Broker secrets the agent must place in the environment at start (never written to config.json). */
  secretEnv: { name: string; resource: string }[];
  /** Broker secrets the agent must write to its tmpfs at `source` before start. */
  secretFiles: { source: string; destination: string; resource: string }[];
}

export interface RuntimeOptions {
  /** Where the agent mounts volumes and secrets (default /run/coffer). */
  stateDir?: string;
  /** AppArmor profile to name for `runtime-default` (none when absent: the VM's runtime decides). */
  appArmorDefault?: string;
}

function user(c: ManifestContainer, img: ImageDefaults | undefined): { uid: number; gid: number } {
  const fromImage = c.securityContext.user === undefined;
  const spec = c.securityContext.user ?? img?.User;
  if (spec === undefined || spec === '') throw inputError('WORKLOAD_NO_USER', `container ${c.name}: no user in the manifest or the image: give securityContext.user (a config.json is never generated to run as root by default)`);
  const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(spec);
  if (!m) throw inputError('WORKLOAD_NO_USER', `container ${c.name}: user "${spec}" is a name; give a numeric uid[:gid] (names resolve inside the image)`);
  const uid = Number(m[1]);
  // Root only when the manifest says so (and `workload check` flags it): an image's USER 0 is the
  // "root by default" this generator promises never to produce.
  if (fromImage && uid === 0) throw inputError('WORKLOAD_NO_USER', `container ${c.name}: the image runs as root (User "${spec}") and the manifest names no user: give securityContext.user`);
  return { uid, gid: m[2] !== undefined ? Number(m[2]) : uid };
}

const imageDefaultsSchema = z.object({
  User: z.string().optional(),
  Env: z.array(z.string()).nullish(),
  Entrypoint: z.array(z.string()).nullish(),
  Cmd: z.array(z.string()).nullish(),
  WorkingDir: z.string().refine((d) => d === '' || d.startsWith('/'), 'must be an absolute path').optional(),
});

/** The image configuration is input (a file or a registry): a bad one is the user's error, not a generator bug. */
function checkImageDefaults(container: string, image: unknown): void {
  const r = imageDefaultsSchema.safeParse(image);
  if (!r.success) throw inputError('WORKLOAD_BAD_IMAGE_CONFIG', `container ${container}: image config ${r.error.issues[0]?.path.join('.') ?? ''}: ${r.error.issues[0]?.message ?? 'invalid'}`);
}

/** config.json for one container. */
export function runtimeConfig(w: WorkloadManifest, containerName: string, image?: ImageDefaults, opts: RuntimeOptions = {}): ContainerRuntime {
  const c = w.containers.find((x) => x.name === containerName);
  if (!c) throw inputError('WORKLOAD_NO_CONTAINER', `no container named ${containerName}`);
  const sc = c.securityContext;
  if (sc.privileged) throw inputError('WORKLOAD_PRIVILEGED', `container ${c.name} is privileged: Coffer does not generate privileged containers`);
  if (image !== undefined) checkImageDefaults(c.name, image);
  const state = opts.stateDir ?? '/run/coffer';
  const args = [...(c.command ?? image?.Entrypoint ?? []), ...(c.args ?? (c.command ? [] : (image?.Cmd ?? [])))];
  if (args.length === 0) throw inputError('WORKLOAD_NO_COMMAND', `container ${c.name}: no command in the manifest or the image`);
  const env = new Map<string, string>();
  for (const e of image?.Env ?? []) {
    const i = e.indexOf('=');
    if (i > 0) env.set(e.slice(0, i), e.slice(i + 1));
  }
  for (const [k, v] of Object.entries(c.env)) env.set(k, v);
  if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  const dropAll = sc.capabilities.drop.some((d) => d.toUpperCase() === 'ALL');
  if (!dropAll) throw inputError('WORKLOAD_CAPS_NOT_DROPPED', `container ${c.name}: capabilities.drop must include ALL for a generated config (list what to add back instead)`);
  const caps = [...new Set(sc.capabilities.add.map((a) => `CAP_${a.toUpperCase().replace(/^CAP_/, '')}`))].sort();
  const mounts: RuntimeConfig['mounts'] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
  for (const m of c.mounts) {
    const v = w.volumes.find((x) => x.name === m.volume);
    if (!v) throw inputError('WORKLOAD_INVALID', `container ${c.name}: no volume named ${m.volume}`);
    const ro = m.readOnly ? ['ro'] : ['rw'];
    if (v.type === 'tmpfs') mounts.push({ destination: m.path, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', ...ro, ...(v.size ? [`size=${quantityBytes(v.size)}`] : [])] });
    else if (v.type === 'encrypted') mounts.push({ destination: m.path, type: 'bind', source: `${state}/volumes/${v.name}`, options: ['rbind', 'nosuid', 'nodev', ...ro] });
    else mounts.push({ destination: m.path, type: 'bind', source: v.path, options: ['rbind', 'nosuid', 'nodev', ...ro] });
  }
  const secretFiles: ContainerRuntime['secretFiles'] = [];
  const secretEnv: ContainerRuntime['secretEnv'] = [];
  c.secrets.forEach((s, i) => {
    if (s.file !== undefined) {
      const source = `${state}/secrets/${c.name}/${i}`;
      secretFiles.push({ source, destination: s.file, resource: s.resource });
      mounts.push({ destination: s.file, type: 'bind', source, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] });
    } else if (s.env !== undefined) secretEnv.push({ name: s.env, resource: s.resource });
  });
  const namespaces: RuntimeConfig['linux']['namespaces'] = [{ type: 'mount' }, { type: 'uts' }, { type: 'cgroup' }];
  if (!w.host.pid) namespaces.push({ type: 'pid' });
  if (!w.host.network) namespaces.push({ type: 'network' });
  if (!w.host.ipc) namespaces.push({ type: 'ipc' });
  const r = c.resources;
  const resources: NonNullable<RuntimeConfig['linux']['resources']> = {};
  if (r?.memory) resources.memory = { limit: quantityBytes(r.memory) };
  if (r?.cpu) {
    const cores = r.cpu.endsWith('m') ? Number(r.cpu.slice(0, -1)) / 1000 : Number(r.cpu);
    resources.cpu = { quota: Math.max(1000, Math.round(cores * 100_000)), period: 100_000 };
  }
  if (r?.pids) resources.pids = { limit: r.pids };
  const appArmor = sc.appArmor === 'unconfined' ? undefined : sc.appArmor === 'runtime-default' ? opts.appArmorDefault : sc.appArmor.localhost;
  if (typeof sc.seccomp === 'object') throw inputError('WORKLOAD_SECCOMP_FILE', `container ${c.name}: a localhost seccomp profile must be inlined by the caller; only runtime-default is generated`);
  const config: RuntimeConfig = {
    ociVersion: RUNTIME_SPEC_VERSION,
    process: {
      terminal: false,
      user: user(c, image),
      args,
      env: [...env].map(([k, v]) => `${k}=${v}`),
      cwd: c.workingDir ?? (image?.WorkingDir || '/'),
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      // No core dumps: they would write the memory that holds the broker's secrets to a file.
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: 1_048_576, soft: 1_048_576 },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: sc.noNewPrivileges,
      ...(appArmor ? { apparmorProfile: appArmor } : {}),
      ...(sc.seLinuxType ? { selinuxLabel: `system_u:system_r:${sc.seLinuxType}:s0` } : {}),
    },
    root: { path: 'rootfs', readonly: sc.readOnlyRootFilesystem },
    hostname: c.name,
    mounts,
    linux: {
      namespaces,
      ...(Object.keys(resources).length > 0 ? { resources } : {}),
      ...(Object.keys(w.sysctls).length > 0 ? { sysctl: { ...w.sysctls } } : {}),
      ...(sc.seccomp === 'runtime-default' ? { seccomp: defaultSeccompProfile(caps) } : {}),
      maskedPaths: sc.procMount === 'unmasked' ? [] : MASKED,
      readonlyPaths: sc.procMount === 'unmasked' ? [] : READONLY,
    },
  };
  const check = runtimeConfigSchema.safeParse(config);
  if (!check.success) throw new Error(`generated config.json is not valid: ${check.error.issues[0]?.path.join('.') ?? ''} ${check.error.issues[0]?.message ?? ''}`);
  return { container: c.name, config: check.data, secretEnv, secretFiles };
}
