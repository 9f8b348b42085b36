//! The master process: turns signals into actions on its workers, as
//! nginx's master cycle does; and the single process of
//! `master_process off`.

use super::listen;
use super::sys::{self, ExitStatus, Forked, SignalPipe};
use super::worker::{self, CMD_QUIT, CMD_REOPEN, CMD_TERMINATE};
use super::{env, init_cycle, log, pidfile, title, Cycle};
use crate::conf::{Level, LoadOptions};
use crate::event::{Command, Control, EventLoop};
use crate::logging::{self, errno_suffix};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const WORKER: &str = "worker process";
const NEW_BINARY: &str = "new binary process";

struct Proc {
    pid: i32,
    name: &'static str,
    channel: Option<UnixStream>,
    /// Worker number (for CPU affinity), kept across respawns.
    worker: usize,
    respawn: bool,
    just_spawn: bool,
    exiting: bool,
    exited: bool,
    detached: bool,
}

/// Flags set from signals, as nginx's globals.
#[derive(Default)]
struct Flags {
    terminate: bool,
    quit: bool,
    reconfigure: bool,
    reopen: bool,
    change_binary: bool,
    noaccept: bool,
    reap: bool,
    restart: bool,
}

pub struct Master {
    opts: LoadOptions,
    cycle: Cycle,
    pipe: Option<SignalPipe>,
    daemonized: bool,
    parent: i32,
    procs: Vec<Proc>,
    flags: Flags,
    new_binary: i32,
    noaccepting: bool,
}

/// Log the signal line with the master's (or single process's) action and
/// set the matching flag.
fn master_signal(
    flags: &mut Flags,
    signo: i32,
    sender: i32,
    daemonized: bool,
    upgrade_blocked: bool,
) {
    let mut ignored_upgrade = false;
    let action = match signo {
        libc::SIGQUIT => {
            flags.quit = true;
            ", shutting down"
        }
        libc::SIGTERM | libc::SIGINT => {
            flags.terminate = true;
            ", exiting"
        }
        libc::SIGWINCH if daemonized => {
            flags.noaccept = true;
            ", stop accepting connections"
        }
        libc::SIGHUP => {
            flags.reconfigure = true;
            ", reconfiguring"
        }
        libc::SIGUSR1 => {
            flags.reopen = true;
            ", reopening logs"
        }
        libc::SIGUSR2 => {
            if upgrade_blocked {
                ignored_upgrade = true;
                ", ignoring"
            } else {
                flags.change_binary = true;
                ", changing binary"
            }
        }
        libc::SIGCHLD => {
            flags.reap = true;
            ""
        }
        _ => "",
    };
    worker::log_signal(signo, sender, action);
    if ignored_upgrade {
        log!(
            Level::Crit,
            "the changing binary signal is ignored: you should shutdown or terminate \
             before either old or new binary's process"
        );
    }
}

impl Master {
    pub fn new(
        opts: LoadOptions,
        cycle: Cycle,
        pipe: SignalPipe,
        daemonized: bool,
        parent: i32,
    ) -> Master {
        Master {
            opts,
            cycle,
            pipe: Some(pipe),
            daemonized,
            parent,
            procs: Vec::new(),
            flags: Flags::default(),
            new_binary: 0,
            noaccepting: false,
        }
    }

    pub fn run(mut self) -> i32 {
        title::set(&title::master_title());
        self.start_workers(false);
        let mut live = true;
        let mut delay: u64 = 0;
        let mut alarm: Option<Instant> = None;
        loop {
            let timeout = alarm.map(|a| a.saturating_duration_since(Instant::now()));
            let fd = self.pipe.as_ref().map_or(-1, |p| p.fd());
            if let Err(e) = sys::wait_readable(fd, timeout) {
                log!(Level::Alert, "poll() failed{}", errno_suffix(&e));
            }
            if let Some(p) = &self.pipe {
                p.drain();
            }
            let mut alarm_fired = false;
            if alarm.is_some_and(|a| Instant::now() >= a) {
                alarm = None;
                alarm_fired = true;
            }
            let blocked = sys::getppid() == self.parent || self.new_binary > 0;
            for (signo, sender) in sys::take_signals() {
                master_signal(&mut self.flags, signo, sender, self.daemonized, blocked);
            }
            if self.flags.reap {
                self.flags.reap = false;
                self.collect_exits();
                live = self.reap_children();
            }
            if !live && (self.flags.terminate || self.flags.quit) {
                return self.exit();
            }
            if self.flags.terminate {
                let send = if delay == 0 {
                    delay = 50;
                    true
                } else if alarm_fired {
                    delay *= 2;
                    true
                } else {
                    false
                };
                if send {
                    alarm = Some(Instant::now() + Duration::from_millis(delay));
                    let signo = if delay > 1000 {
                        libc::SIGKILL
                    } else {
                        libc::SIGTERM
                    };
                    self.signal_workers(signo);
                }
                continue;
            }
            if self.flags.quit {
                self.signal_workers(libc::SIGQUIT);
                self.close_listeners();
                continue;
            }
            if self.flags.reconfigure {
                self.flags.reconfigure = false;
                if self.new_binary > 0 {
                    self.start_workers(false);
                    self.noaccepting = false;
                    continue;
                }
                log!(Level::Notice, "reconfiguring");
                if self.reload() {
                    self.start_workers(true);
                    // Let the new workers start before the old ones stop.
                    std::thread::sleep(Duration::from_millis(100));
                    live = true;
                    self.signal_workers(libc::SIGQUIT);
                }
            }
            if self.flags.restart {
                self.flags.restart = false;
                self.start_workers(false);
                live = true;
            }
            if self.flags.reopen {
                self.flags.reopen = false;
                log!(Level::Notice, "reopening logs");
                // New files belong to the workers' user, as in nginx.
                let owner = (sys::geteuid() == 0)
                    .then(|| self.cycle.config.main.user.as_ref().map(|u| u.uid))
                    .flatten();
                self.cycle.logs.reopen_owned(owner);
                self.signal_workers(libc::SIGUSR1);
            }
            if self.flags.change_binary {
                self.flags.change_binary = false;
                log!(Level::Notice, "changing binary");
                self.new_binary = self.exec_new_binary().unwrap_or(0);
            }
            if self.flags.noaccept {
                self.flags.noaccept = false;
                self.noaccepting = true;
                self.signal_workers(libc::SIGQUIT);
            }
        }
    }

    fn start_workers(&mut self, just_spawn: bool) {
        log!(Level::Notice, "start worker processes");
        for n in 0..self.cycle.config.main.worker_processes {
            self.spawn_worker(n, just_spawn, None);
        }
    }

    /// Fork worker `n`; `slot` replaces an exited process entry.
    fn spawn_worker(&mut self, n: usize, just_spawn: bool, slot: Option<usize>) -> bool {
        let (master_end, worker_end) = match UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                log!(
                    Level::Alert,
                    "socketpair() failed while spawning \"{WORKER}\"{}",
                    errno_suffix(&e)
                );
                return false;
            }
        };
        match sys::fork() {
            Err(e) => {
                log!(
                    Level::Alert,
                    "fork() failed while spawning \"{WORKER}\"{}",
                    errno_suffix(&e)
                );
                false
            }
            Ok(Forked::Child) => {
                let pipe = match sys::install_signal_handlers() {
                    Ok(p) => p,
                    Err(e) => {
                        log!(Level::Emerg, "{e}");
                        std::process::exit(2);
                    }
                };
                // Close what belongs to the master only.
                drop(master_end);
                drop(self.pipe.take());
                drop(std::mem::take(&mut self.procs));
                // The worker's loop takes the listening sockets over.
                let listeners = std::mem::take(&mut self.cycle.listeners);
                worker::worker_main(&self.cycle, listeners, n, worker_end, self.daemonized, pipe)
            }
            Ok(Forked::Parent(pid)) => {
                drop(worker_end);
                let _ = master_end.set_nonblocking(true);
                log!(Level::Notice, "start {WORKER} {pid}");
                let proc = Proc {
                    pid,
                    name: WORKER,
                    channel: Some(master_end),
                    worker: n,
                    respawn: true,
                    just_spawn,
                    exiting: false,
                    exited: false,
                    detached: false,
                };
                match slot {
                    Some(i) => self.procs[i] = proc,
                    None => self.procs.push(proc),
                }
                true
            }
        }
    }

    /// Tell workers to quit, terminate or reopen: through the channel, or
    /// with a signal if the channel fails, as nginx does.
    fn signal_workers(&mut self, signo: i32) {
        let cmd = match signo {
            libc::SIGQUIT => Some(CMD_QUIT),
            libc::SIGTERM => Some(CMD_TERMINATE),
            libc::SIGUSR1 => Some(CMD_REOPEN),
            _ => None,
        };
        let mut reap = false;
        for p in &mut self.procs {
            if p.detached || p.exited {
                continue;
            }
            if p.just_spawn {
                p.just_spawn = false;
                continue;
            }
            if p.exiting && signo == libc::SIGQUIT {
                continue;
            }
            if let (Some(c), Some(ch)) = (cmd, p.channel.as_mut()) {
                if ch.write_all(&[c]).is_ok() {
                    if signo != libc::SIGUSR1 {
                        p.exiting = true;
                    }
                    continue;
                }
            }
            if let Err(e) = sys::kill(p.pid, signo) {
                log!(
                    Level::Alert,
                    "kill({}, {signo}) failed{}",
                    p.pid,
                    errno_suffix(&e)
                );
                if e.raw_os_error() == Some(libc::ESRCH) {
                    p.exited = true;
                    p.exiting = false;
                    reap = true;
                }
                continue;
            }
            if signo != libc::SIGUSR1 {
                p.exiting = true;
            }
        }
        if reap {
            self.flags.reap = true;
        }
    }

    /// waitpid() every exited child and log how it ended.
    fn collect_exits(&mut self) {
        loop {
            let (pid, status) = match sys::reap_child() {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return,
                Err(e) => {
                    log!(Level::Alert, "waitpid() failed{}", errno_suffix(&e));
                    return;
                }
            };
            let proc = self.procs.iter_mut().find(|p| p.pid == pid);
            let name = proc.as_ref().map_or("unknown process", |p| p.name);
            match status {
                ExitStatus::Signal { signo, core } => {
                    log!(
                        Level::Alert,
                        "{name} {pid} exited on signal {signo}{}",
                        if core { " (core dumped)" } else { "" }
                    );
                    // The next locker recovers a lock the dead worker held
                    // (robust mutex); the operator still hears about it.
                    for zone in self.cycle.zones.locked_by(pid) {
                        log!(
                            Level::Alert,
                            "shared memory zone \"{}\" was locked by {pid}",
                            zone.name()
                        );
                    }
                }
                ExitStatus::Code(code) => {
                    log!(Level::Notice, "{name} {pid} exited with code {code}")
                }
            }
            if let Some(p) = proc {
                p.exited = true;
                if status == ExitStatus::Code(2) && p.respawn {
                    log!(
                        Level::Alert,
                        "{name} {pid} exited with fatal code 2 and cannot be respawned"
                    );
                    p.respawn = false;
                }
            }
        }
    }

    /// Respawn workers that died unexpectedly, forget the ones that are
    /// gone; whether any process is still alive.
    fn reap_children(&mut self) -> bool {
        let mut live = false;
        let mut i = 0;
        while i < self.procs.len() {
            let p = &self.procs[i];
            if !p.exited {
                if p.exiting || !p.detached {
                    live = true;
                }
                i += 1;
                continue;
            }
            if p.respawn && !p.exiting && !self.flags.terminate && !self.flags.quit {
                let n = p.worker;
                if self.spawn_worker(n, false, Some(i)) {
                    live = true;
                } else {
                    log!(Level::Alert, "could not respawn {WORKER}");
                    self.procs.remove(i);
                    continue;
                }
                i += 1;
                continue;
            }
            if p.pid == self.new_binary {
                if let Some(path) = &self.cycle.config.main.pid {
                    let old = pidfile::oldbin(path);
                    if let Err(e) = std::fs::rename(&old, path) {
                        log!(
                            Level::Alert,
                            "rename() {} back to {} failed after the new binary process \"{}\" exited{}",
                            old.display(),
                            path.display(),
                            argv0(),
                            errno_suffix(&e)
                        );
                    }
                }
                self.new_binary = 0;
                if self.noaccepting {
                    self.flags.restart = true;
                    self.noaccepting = false;
                }
            }
            self.procs.remove(i);
        }
        live
    }

    /// Re-read the configuration; on success the new cycle is current.
    fn reload(&mut self) -> bool {
        let Some(config) = super::load_logged(&self.opts) else {
            return false;
        };
        let mut old = std::mem::take(&mut self.cycle.listeners);
        let Some(new) = init_cycle(config, &mut old, &self.cycle.zones) else {
            self.cycle.listeners = old;
            return false;
        };
        let mut sink = |level: Level, msg: String| log!(level, "{msg}");
        listen::close_unused(old, listen::Unlink::OnReload, &mut sink);
        let old_pid = self.cycle.config.main.pid.clone();
        if new.config.main.pid != old_pid {
            if let Some(p) = &new.config.main.pid {
                if let Err(msg) = pidfile::write(p, sys::getpid()) {
                    log!(Level::Emerg, "{msg}");
                }
            }
            if let Some(p) = &old_pid {
                if let Err(msg) = pidfile::delete(p) {
                    log!(Level::Alert, "{msg}");
                }
            }
        }
        logging::install(new.logs.main.clone());
        log!(Level::Notice, "using the \"epoll\" event method");
        self.cycle = new;
        true
    }

    /// USR2: start the binary named by argv[0] with our listening sockets.
    fn exec_new_binary(&mut self) -> Option<i32> {
        let args = title::original_args();
        let program = args.first()?.clone();
        let mut vars = env::compute(&self.cycle.config.main.env, &env::current());
        let fds: String = self
            .cycle
            .listeners
            .iter()
            .map(|l| format!("{};", l.fd.as_raw_fd()))
            .collect();
        vars.push((listen::INHERIT_VARS[0].to_string(), fds));
        // Room for the new master's process title, which is written over
        // its argv and environment (nginx passes the same spare variable).
        vars.push(("SPARE".to_string(), "X".repeat(298)));
        let pid_path = self.cycle.config.main.pid.clone();
        if let Some(p) = &pid_path {
            let old = pidfile::oldbin(p);
            if let Err(e) = std::fs::rename(p, &old) {
                log!(
                    Level::Alert,
                    "rename() {} to {} failed before executing new binary process \"{}\"{}",
                    p.display(),
                    old.display(),
                    argv0(),
                    errno_suffix(&e)
                );
                return None;
            }
        }
        let raw: Vec<RawFd> = self
            .cycle
            .listeners
            .iter()
            .map(|l| l.fd.as_raw_fd())
            .collect();
        for &fd in &raw {
            let _ = sys::set_cloexec(fd, false);
        }
        let spawned = std::process::Command::new(&program)
            .args(&args[1..])
            .env_clear()
            .envs(vars)
            .spawn();
        for &fd in &raw {
            let _ = sys::set_cloexec(fd, true);
        }
        match spawned {
            Ok(child) => {
                let pid = child.id() as i32;
                log!(Level::Notice, "start {NEW_BINARY} {pid}");
                self.procs.push(Proc {
                    pid,
                    name: NEW_BINARY,
                    channel: None,
                    worker: 0,
                    respawn: false,
                    just_spawn: false,
                    exiting: false,
                    exited: false,
                    detached: true,
                });
                Some(pid)
            }
            Err(e) => {
                log!(
                    Level::Alert,
                    "execve() failed while executing {NEW_BINARY} \"{}\"{}",
                    argv0(),
                    errno_suffix(&e)
                );
                if let Some(p) = &pid_path {
                    let old = pidfile::oldbin(p);
                    if let Err(e) = std::fs::rename(&old, p) {
                        log!(
                            Level::Alert,
                            "rename() {} back to {} failed after an attempt to execute new binary process \"{}\"{}",
                            old.display(),
                            p.display(),
                            argv0(),
                            errno_suffix(&e)
                        );
                    }
                }
                None
            }
        }
    }

    /// Close our listening sockets (QUIT, exit); UNIX-domain socket files
    /// are removed unless a new binary still uses them.
    fn close_listeners(&mut self) {
        let unlink = if self.new_binary == 0 {
            listen::Unlink::OnClose {
                keep_inherited: self.old_master_alive(),
            }
        } else {
            listen::Unlink::Never
        };
        let mut sink = |level: Level, msg: String| log!(level, "{msg}");
        listen::close_unused(std::mem::take(&mut self.cycle.listeners), unlink, &mut sink);
    }

    /// Whether the master that passed us our sockets still runs (it is
    /// still our parent), so inherited UNIX-domain socket files are its.
    fn old_master_alive(&self) -> bool {
        sys::getppid() == self.parent
    }

    fn exit(mut self) -> i32 {
        if let Some(p) = &self.cycle.config.main.pid {
            // During an upgrade our pid file is the renamed one; the new
            // master owns the original name.
            let p = if self.new_binary > 0 {
                pidfile::oldbin(p)
            } else {
                p.clone()
            };
            if let Err(msg) = pidfile::delete(&p) {
                log!(Level::Alert, "{msg}");
            }
        }
        log!(Level::Notice, "exit");
        self.close_listeners();
        0
    }
}

fn argv0() -> String {
    title::original_args()
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `master_process off`: this process serves connections itself.
struct SingleControl {
    opts: LoadOptions,
    cycle: Cycle,
    pipe: SignalPipe,
    daemonized: bool,
}

impl Control for SingleControl {
    fn fds(&self) -> Vec<RawFd> {
        vec![self.pipe.fd()]
    }

    fn poll(&mut self) -> Vec<Command> {
        self.pipe.drain();
        let mut flags = Flags::default();
        for (signo, sender) in sys::take_signals() {
            // USR2 does nothing without a master; nginx still logs it.
            master_signal(&mut flags, signo, sender, self.daemonized, false);
        }
        if flags.reap {
            while let Ok(Some(_)) = sys::reap_child() {}
        }
        let mut out = Vec::new();
        if flags.terminate || flags.quit {
            out.push(Command::Terminate);
            return out;
        }
        if flags.reconfigure {
            log!(Level::Notice, "reconfiguring");
            if let Some(cmd) = self.reload() {
                out.push(cmd);
            }
        }
        if flags.reopen {
            log!(Level::Notice, "reopening logs");
            self.cycle.logs.reopen();
        }
        out
    }
}

impl SingleControl {
    fn reload(&mut self) -> Option<Command> {
        let config = super::load_logged(&self.opts)?;
        let mut old = std::mem::take(&mut self.cycle.listeners);
        let old_specs: Vec<_> = old.iter().map(|l| l.spec.clone()).collect();
        let Some(new) = init_cycle(config, &mut old, &self.cycle.zones) else {
            self.cycle.listeners = old;
            return None;
        };
        let specs = new.listeners.iter().map(|l| l.spec.clone()).collect();
        let acceptor = match worker::acceptor(&new, specs) {
            Ok(a) => a,
            Err(msg) => {
                log!(msg.level, "{}", msg.text);
                // The old configuration stays: give back the sockets the
                // new cycle took over and close the ones it opened.
                let mut sink = |level: Level, msg: String| log!(level, "{msg}");
                let mut fresh = Vec::new();
                for l in new.listeners {
                    match old_specs.iter().find(|s| s.addr == l.spec.addr) {
                        Some(spec) => old.push(listen::Listener {
                            spec: spec.clone(),
                            ..l
                        }),
                        None => fresh.push(l),
                    }
                }
                listen::close_unused(fresh, listen::Unlink::OnReload, &mut sink);
                self.cycle.listeners = old;
                return None;
            }
        };
        let mut sink = |level: Level, msg: String| log!(level, "{msg}");
        listen::close_unused(old, listen::Unlink::OnReload, &mut sink);
        logging::install(new.logs.main.clone());
        log!(Level::Notice, "using the \"epoll\" event method");
        self.cycle = new;
        Some(Command::Replace {
            listening: worker::to_listening(worker::dup_listeners(&self.cycle.listeners)),
            acceptor,
            settings: worker::settings(&self.cycle.config, 0),
        })
    }
}

pub fn single_process(opts: LoadOptions, cycle: Cycle, pipe: SignalPipe, daemonized: bool) -> i32 {
    let specs = cycle.listeners.iter().map(|l| l.spec.clone()).collect();
    // TLS contexts first: keys on a token may need the environment.
    let acceptor = match worker::acceptor(&cycle, specs) {
        Ok(a) => a,
        Err(msg) => {
            log!(msg.level, "{}", msg.text);
            return 1;
        }
    };
    // nginx's single process only sets the environment: no privilege
    // drop or limits, those belong to workers.
    env::apply(&env::compute(&cycle.config.main.env, &env::current()));
    let counter = cycle.counter.clone();
    let lp = EventLoop::new(
        worker::to_listening(worker::dup_listeners(&cycle.listeners)),
        acceptor,
        worker::settings(&cycle.config, 0),
        Box::new(move || counter.next()),
    );
    let mut lp = match lp {
        Ok(lp) => lp,
        Err(e) => {
            log!(Level::Emerg, "epoll_create() failed{}", errno_suffix(&e));
            return 1;
        }
    };
    let mut control = SingleControl {
        opts,
        cycle,
        pipe,
        daemonized,
    };
    if let Err(e) = lp.run(&mut control) {
        log!(Level::Alert, "event loop failed{}", errno_suffix(&e));
    }
    drop(lp);
    let cycle = &mut control.cycle;
    if let Some(p) = &cycle.config.main.pid {
        if let Err(msg) = pidfile::delete(p) {
            log!(Level::Alert, "{msg}");
        }
    }
    log!(Level::Notice, "exit");
    let mut sink = |level: Level, msg: String| log!(level, "{msg}");
    let unlink = listen::Unlink::OnClose {
        keep_inherited: false,
    };
    listen::close_unused(std::mem::take(&mut cycle.listeners), unlink, &mut sink);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_nginx_actions() {
        let mut f = Flags::default();
        master_signal(&mut f, libc::SIGHUP, 1, true, false);
        master_signal(&mut f, libc::SIGUSR1, 1, true, false);
        master_signal(&mut f, libc::SIGCHLD, 1, true, false);
        assert!(f.reconfigure && f.reopen && f.reap);
        assert!(!f.quit && !f.terminate && !f.change_binary);

        // WINCH only means "stop accepting" for a daemon, as in nginx.
        let mut f = Flags::default();
        master_signal(&mut f, libc::SIGWINCH, 1, false, false);
        assert!(!f.noaccept);
        master_signal(&mut f, libc::SIGWINCH, 1, true, false);
        assert!(f.noaccept);

        // USR2 is ignored while the old master (our parent) still runs.
        let mut f = Flags::default();
        master_signal(&mut f, libc::SIGUSR2, 1, true, true);
        assert!(!f.change_binary);
        master_signal(&mut f, libc::SIGUSR2, 1, true, false);
        assert!(f.change_binary);

        let mut f = Flags::default();
        master_signal(&mut f, libc::SIGINT, 0, false, false);
        master_signal(&mut f, libc::SIGQUIT, 0, false, false);
        assert!(f.terminate && f.quit);
    }
}
