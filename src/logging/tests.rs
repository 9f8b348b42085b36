use super::*;
use crate::conf::{SyslogServer, SyslogTarget};
use std::net::UdpSocket;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("postern-log-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn file_log(path: &Path, level: Level) -> ErrorLog {
    ErrorLog {
        target: LogTarget::File(path.to_path_buf()),
        level,
    }
}

fn line_of(level: Level, conn: Option<u64>, extra: &Extra<'_>, msg: &str) -> String {
    let line = format_line(
        "2024/03/09 07:05:01",
        4242,
        level,
        conn,
        format_args!("{msg}"),
        extra,
    );
    String::from_utf8(line.bytes).unwrap()
}

#[test]
fn line_format() {
    assert_eq!(
        line_of(Level::Error, None, &Extra::default(), "boom"),
        "2024/03/09 07:05:01 [error] 4242#0: boom\n"
    );
    assert_eq!(
        line_of(Level::Info, Some(17), &Extra::default(), "client closed"),
        "2024/03/09 07:05:01 [info] 4242#0: *17 client closed\n"
    );
}

#[test]
fn errno_and_context_suffixes() {
    let err = io::Error::from_raw_os_error(13);
    assert_eq!(errno_suffix(&err), " (13: Permission denied)");
    let ctx = ", client: 127.0.0.1, server: 0.0.0.0:143";
    let extra = Extra {
        err: Some(&err),
        context: Some(&ctx),
        ..Extra::default()
    };
    assert_eq!(
        line_of(Level::Crit, Some(3), &extra, "open() \"/x\" failed"),
        "2024/03/09 07:05:01 [crit] 4242#0: *3 open() \"/x\" failed (13: Permission denied), \
         client: 127.0.0.1, server: 0.0.0.0:143\n"
    );
    // Debug messages carry no context, as nginx's log handler is skipped.
    assert_eq!(
        line_of(Level::Debug, None, &extra, "x"),
        "2024/03/09 07:05:01 [debug] 4242#0: x (13: Permission denied)\n"
    );
}

#[test]
fn long_lines_are_truncated_like_nginx() {
    let long = "a".repeat(5000);
    let line = line_of(Level::Error, None, &Extra::default(), &long);
    assert_eq!(line.len(), MAX_LINE);
    assert!(line.ends_with("aaa\n"));

    let err = io::Error::from_raw_os_error(2);
    let extra = Extra {
        err: Some(&err),
        ..Extra::default()
    };
    let line = line_of(Level::Error, None, &extra, &long);
    assert!(
        line.ends_with("aaa... (2: No such file or directory)\n"),
        "{line}"
    );
    assert_eq!(
        line.len(),
        MAX_LINE - 50 + 3 + " (2: No such file or directory)".len() + 1
    );
}

#[test]
fn levels_filter_per_sink() {
    let dir = temp_dir("levels");
    let info = dir.join("info.log");
    let warn = dir.join("warn.log");
    let log = Log::open(&[file_log(&warn, Level::Warn), file_log(&info, Level::Info)]).unwrap();
    assert!(log.enabled(Level::Info));
    assert!(!log.enabled(Level::Debug));
    log.write(Level::Notice, None, format_args!("notice one"));
    log.write(Level::Error, Some(5), format_args!("error two"));
    log.write(Level::Debug, None, format_args!("debug three"));
    let info_text = std::fs::read_to_string(&info).unwrap();
    let warn_text = std::fs::read_to_string(&warn).unwrap();
    assert!(info_text.contains("[notice]") && info_text.contains("notice one"));
    assert!(info_text.contains("[error]") && info_text.contains("*5 error two"));
    assert!(!info_text.contains("debug three"));
    assert!(!warn_text.contains("notice one"));
    assert!(warn_text.contains("error two"));
    assert_eq!(warn_text.lines().count(), 1);

    // debug_connection: a forced message reaches every sink.
    log.write_conn(Level::Debug, Some(9), true, format_args!("forced"));
    assert!(std::fs::read_to_string(&warn).unwrap().contains("[debug]"));
    assert!(std::fs::read_to_string(&info)
        .unwrap()
        .contains("*9 forced"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_are_created_0644_and_appended() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("mode");
    let path = dir.join("error.log");
    std::fs::write(&path, "old line\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = Log::open(&[file_log(&path, Level::Error)]).unwrap();
    log.write(Level::Error, None, format_args!("new"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("old line\n") && text.ends_with("new\n"));

    let fresh = dir.join("fresh.log");
    let _ = Log::open(&[file_log(&fresh, Level::Error)]).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    // The umask may remove bits, never add them.
    assert_eq!(mode & !0o644, 0);
    assert!(mode & 0o600 == 0o600);

    let err = Log::open(&[file_log(&dir.join("no/such/dir.log"), Level::Error)]).unwrap_err();
    assert_eq!(
        err,
        format!(
            "open() \"{}\" failed (2: No such file or directory)",
            dir.join("no/such/dir.log").display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reopen_after_rename() {
    let dir = temp_dir("reopen");
    let path = dir.join("error.log");
    let config_like = Log::open(&[file_log(&path, Level::Info)]).unwrap();
    config_like.write(Level::Info, None, format_args!("before"));
    std::fs::rename(&path, dir.join("error.log.1")).unwrap();
    config_like.write(Level::Info, None, format_args!("still old"));
    config_like.reopen().unwrap();
    config_like.write(Level::Info, None, format_args!("after"));
    let old = std::fs::read_to_string(dir.join("error.log.1")).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(old.contains("before") && old.contains("still old") && !old.contains("after"));
    assert!(new.contains("after") && !new.contains("before"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn memory_ring_wraps() {
    let log = Log::open(&[ErrorLog {
        target: LogTarget::Memory(200),
        level: Level::Debug,
    }])
    .unwrap();
    for i in 0..10 {
        log.write(Level::Info, None, format_args!("message number {i}"));
    }
    let contents = log.memory_contents();
    assert_eq!(contents.len(), 1);
    let text = String::from_utf8_lossy(&contents[0]).into_owned();
    let ring_len = 200 - "MEMLOG 200\n".len();
    assert_eq!(text.len(), ring_len);
    assert!(text.ends_with("message number 9\n"), "{text}");
    assert!(!text.contains("message number 0\n"));

    let ring = sink::MemoryRing::new(20);
    assert_eq!(&ring.raw()[..10], b"MEMLOG 20\n");
    ring.write(b"abcdef");
    assert_eq!(ring.contents(), b"abcdef");
    ring.write(b"ghijklm");
    assert_eq!(ring.contents(), b"defghijklm");
    ring.write(b"0123456789ABCDEF");
    assert_eq!(ring.contents(), b"6789ABCDEF");
}

fn syslog_target(server: SyslogServer) -> SyslogTarget {
    SyslogTarget {
        server,
        facility: 23,
        severity: 6,
        tag: "postern".to_string(),
        nohostname: false,
    }
}

#[test]
fn syslog_packet_bytes() {
    let mut t = syslog_target(SyslogServer::Udp("127.0.0.1:514".parse().unwrap()));
    let line = b"2024/03/09 07:05:01 [error] 1#0: x\n";
    assert_eq!(
        syslog_packet(&t, 3, "Mar  9 07:05:01", "mx1", line),
        b"<187>Mar  9 07:05:01 mx1 postern: 2024/03/09 07:05:01 [error] 1#0: x".to_vec()
    );
    t.nohostname = true;
    t.facility = 2;
    t.tag = "mail_proxy".into();
    assert_eq!(
        syslog_packet(&t, 4, "Mar 19 07:05:01", "mx1", line),
        b"<20>Mar 19 07:05:01 mail_proxy: 2024/03/09 07:05:01 [error] 1#0: x".to_vec()
    );
}

#[test]
fn syslog_over_udp() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let log = Log::open(&[ErrorLog {
        target: LogTarget::Syslog(syslog_target(SyslogServer::Udp(addr))),
        level: Level::Info,
    }])
    .unwrap();
    log.write(Level::Warn, Some(7), format_args!("hello syslog"));
    log.write(Level::Debug, None, format_args!("filtered"));
    log.write(Level::Emerg, None, format_args!("second"));
    let mut buf = [0u8; 4096];
    let n = server.recv(&mut buf).unwrap();
    let pkt = String::from_utf8_lossy(&buf[..n]).into_owned();
    // local7 (23) * 8 + warn (4) = 188
    assert!(pkt.starts_with("<188>"), "{pkt}");
    let host_tag = format!(" {} postern: ", hostname());
    assert!(pkt.contains(&host_tag), "{pkt}");
    assert!(
        pkt.ends_with(&format!("[warn] {}#0: *7 hello syslog", std::process::id())),
        "{pkt}"
    );
    let n = server.recv(&mut buf).unwrap();
    let pkt = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(pkt.starts_with("<184>") && pkt.ends_with("second"), "{pkt}");
}

#[test]
fn syslog_over_unix_datagram() {
    let dir = temp_dir("syslog-unix");
    let path = dir.join("log.sock");
    let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut t = syslog_target(SyslogServer::Unix(path.clone()));
    t.nohostname = true;
    let log = Log::open(&[ErrorLog {
        target: LogTarget::Syslog(t),
        level: Level::Error,
    }])
    .unwrap();
    log.write(Level::Crit, None, format_args!("over unix"));
    let mut buf = [0u8; 4096];
    let n = server.recv(&mut buf).unwrap();
    let pkt = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(pkt.starts_with("<186>"), "{pkt}");
    assert!(
        pkt.contains(" postern: ") && pkt.ends_with("over unix"),
        "{pkt}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syslog_failure_is_reported_on_other_sinks() {
    let dir = temp_dir("syslog-fail");
    let file = dir.join("error.log");
    let missing = dir.join("missing.sock");
    let log = Log::open(&[
        ErrorLog {
            target: LogTarget::Syslog(syslog_target(SyslogServer::Unix(missing.clone()))),
            level: Level::Info,
        },
        file_log(&file, Level::Info),
    ])
    .unwrap();
    log.write(Level::Error, None, format_args!("lost"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[error]") && text.contains("lost"));
    assert!(
        text.contains(&format!(
            "[alert] {}#0: connect() failed (2: No such file or directory) while logging to syslog, server: unix:{}",
            std::process::id(),
            missing.display()
        )),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_logs_share_files() {
    use crate::conf::{CpuAffinity, EventsConf, MainConf};
    let dir = temp_dir("shared");
    let a = dir.join("a.log");
    let b = dir.join("b.log");
    let config = Config {
        main: MainConf {
            daemon: true,
            master_process: true,
            worker_processes: 1,
            pid: None,
            lock_file: dir.join("lock"),
            error_log: vec![
                file_log(&a, Level::Error),
                file_log(&a, Level::Info),
                file_log(&b, Level::Warn),
            ],
            user: None,
            worker_rlimit_nofile: None,
            worker_rlimit_core: None,
            working_directory: None,
            worker_priority: 0,
            worker_cpu_affinity: CpuAffinity::None,
            worker_shutdown_timeout: None,
            timer_resolution: None,
            env: Vec::new(),
        },
        events: EventsConf {
            worker_connections: 512,
            multi_accept: false,
            accept_mutex: false,
            accept_mutex_delay: Duration::from_millis(500),
            debug_connection: Vec::new(),
            use_method: None,
        },
        mail: None,
        files: Vec::new(),
    };
    let logs = ConfigLogs::open(&config).unwrap();
    assert_eq!(logs.file_paths(), vec![a.as_path(), b.as_path()]);
    logs.main.write(Level::Info, None, format_args!("once"));
    // Named twice at different levels: the line is written by both sinks,
    // as nginx does, through one open file.
    assert_eq!(
        std::fs::read_to_string(&a).unwrap().matches("once").count(),
        1
    );
    logs.main.write(Level::Error, None, format_args!("twice"));
    assert_eq!(
        std::fs::read_to_string(&a)
            .unwrap()
            .matches("twice")
            .count(),
        2
    );
    std::fs::rename(&a, dir.join("a.old")).unwrap();
    logs.reopen();
    logs.main.write(Level::Warn, None, format_args!("fresh"));
    assert!(std::fs::read_to_string(&a).unwrap().contains("fresh"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_crate_levels_map() {
    assert_eq!(from_log_level(log::Level::Error), Level::Error);
    assert_eq!(from_log_level(log::Level::Warn), Level::Warn);
    assert_eq!(from_log_level(log::Level::Info), Level::Info);
    assert_eq!(from_log_level(log::Level::Debug), Level::Debug);
    assert_eq!(from_log_level(log::Level::Trace), Level::Debug);
    assert_eq!(to_log_filter(Level::Debug), log::LevelFilter::Trace);
    assert_eq!(to_log_filter(Level::Notice), log::LevelFilter::Info);
}

#[test]
fn log_crate_reaches_installed_log() {
    let log = Arc::new(
        Log::open(&[ErrorLog {
            target: LogTarget::Memory(4096),
            level: Level::Info,
        }])
        .unwrap(),
    );
    install(log.clone());
    log::info!("via the log crate {}", 42);
    log::debug!("not at info");
    let text = String::from_utf8_lossy(&log.memory_contents()[0]).into_owned();
    assert!(
        text.contains("[info]") && text.contains("via the log crate 42"),
        "{text}"
    );
    assert!(!text.contains("not at info"));
    assert!(Arc::ptr_eq(&current(), &log));
}
