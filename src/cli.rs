//! The command line, exactly nginx's: the same options, messages, output
//! streams and exit codes, with `postern` where nginx prints `nginx`.

use crate::build_info;
use crate::conf::{self, Level, LoadOptions, LogTarget};
use crate::logging::{self, ConfigLogs, Log};
use crate::process;
use crate::tls;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the command line asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `-v`, `-V`, `-?`, `-h`
    pub show_version: bool,
    /// `-?`, `-h`
    pub show_help: bool,
    /// `-V`
    pub show_configure: bool,
    /// `-t`, `-T`
    pub test_config: bool,
    /// `-T`
    pub dump_config: bool,
    /// `-q`
    pub quiet: bool,
    /// `-p prefix`
    pub prefix: Option<OsString>,
    /// `-e file`; `-e stderr` is kept as the empty string, as nginx does.
    pub error_log: Option<OsString>,
    /// `-c file`
    pub conf_file: Option<OsString>,
    /// `-g directives`
    pub globals: Option<OsString>,
    /// `-s stop|quit|reopen|reload`
    pub signal: Option<String>,
}

const SIGNALS: [&str; 4] = ["stop", "quit", "reopen", "reload"];

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// Parse the arguments after the program name as nginx's ngx_get_options
/// does: flags may be grouped (`-tq`), an option's value may be attached
/// (`-c/x`) or be the next argument. The error is the message nginx prints
/// after `nginx: `.
pub fn parse_options<I, S>(args: I) -> Result<Options, String>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        let Some(flags) = arg.strip_prefix(b"-") else {
            return Err(format!("invalid option: \"{}\"", lossy(arg)));
        };
        let mut k = 0;
        while k < flags.len() {
            let c = flags[k];
            k += 1;
            let attached = &flags[k..];
            // The value of an option that takes one: the rest of this
            // argument, else the next argument.
            let mut value = |missing: &str| -> Result<OsString, String> {
                if !attached.is_empty() {
                    return Ok(OsString::from_vec(attached.to_vec()));
                }
                i += 1;
                match args.get(i) {
                    Some(v) => Ok(v.clone()),
                    None => Err(missing.to_string()),
                }
            };
            match c {
                b'?' | b'h' => {
                    o.show_version = true;
                    o.show_help = true;
                }
                b'v' => o.show_version = true,
                b'V' => {
                    o.show_version = true;
                    o.show_configure = true;
                }
                b't' => o.test_config = true,
                b'T' => {
                    o.test_config = true;
                    o.dump_config = true;
                }
                b'q' => o.quiet = true,
                b'p' => {
                    o.prefix = Some(value("option \"-p\" requires directory name")?);
                    break;
                }
                b'e' => {
                    let v = value("option \"-e\" requires file name")?;
                    o.error_log = Some(if v == "stderr" { OsString::new() } else { v });
                    break;
                }
                b'c' => {
                    o.conf_file = Some(value("option \"-c\" requires file name")?);
                    break;
                }
                b'g' => {
                    o.globals = Some(value("option \"-g\" requires parameter")?);
                    break;
                }
                b's' => {
                    let v = value("option \"-s\" requires parameter")?;
                    let name = lossy(v.as_bytes());
                    if !SIGNALS.contains(&name.as_str()) {
                        return Err(format!("invalid option: \"-s {name}\""));
                    }
                    o.signal = Some(name);
                    break;
                }
                other => {
                    return Err(format!("invalid option: \"{}\"", lossy(&[other])));
                }
            }
        }
        i += 1;
    }
    Ok(o)
}

/// The prefix as nginx prints it in the usage text (with a trailing '/').
fn prefix_with_slash(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// nginx's version, usage and configure report, all written to stderr.
pub fn version_info(o: &Options) -> String {
    let mut s = format!("postern version: postern/{}\n", build_info::VERSION);
    if o.show_help {
        let error_log = if build_info::DEFAULT_ERROR_LOG_PATH == "stderr" {
            "stderr"
        } else {
            build_info::DEFAULT_ERROR_LOG_PATH
        };
        s.push_str(&format!(
            "Usage: postern [-?hvVtTq] [-s signal] [-p prefix]\n\
             \x20              [-e filename] [-c filename] [-g directives]\n\
             \n\
             Options:\n\
             \x20 -?,-h         : this help\n\
             \x20 -v            : show version and exit\n\
             \x20 -V            : show version and configure options then exit\n\
             \x20 -t            : test configuration and exit\n\
             \x20 -T            : test configuration, dump it and exit\n\
             \x20 -q            : suppress non-error messages during configuration testing\n\
             \x20 -s signal     : send signal to a master process: stop, quit, reopen, reload\n\
             \x20 -p prefix     : set prefix path (default: {})\n\
             \x20 -e filename   : set error log file (default: {})\n\
             \x20 -c filename   : set configuration file (default: {})\n\
             \x20 -g directives : set global directives out of configuration file\n\n",
            prefix_with_slash(build_info::DEFAULT_PREFIX),
            error_log,
            build_info::DEFAULT_CONF_PATH,
        ));
    }
    if o.show_configure {
        s.push_str(&format!("built by {}\n", build_info::RUSTC_VERSION));
        let running = openssl::version::version();
        if running == build_info::OPENSSL_BUILT_WITH {
            s.push_str(&format!("built with {}\n", build_info::OPENSSL_BUILT_WITH));
        } else {
            s.push_str(&format!(
                "built with {} (running with {})\n",
                build_info::OPENSSL_BUILT_WITH,
                running
            ));
        }
        // Every OpenSSL 3 supports the server name extension.
        s.push_str("TLS SNI support enabled\n");
        s.push_str(&format!(
            "configure arguments:{}\n",
            build_info::CONFIGURE_ARGUMENTS
        ));
    }
    s
}

/// nginx's full-name rule: a relative path is taken relative to `prefix`.
fn full_name(prefix: &Path, name: &OsStr) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        prefix.join(p)
    }
}

/// Where to find the configuration, from the options and the built-in
/// defaults (nginx's ngx_process_options).
pub fn load_options(o: &Options) -> LoadOptions {
    let prefix = match &o.prefix {
        Some(p) => p.clone(),
        None => OsString::from(build_info::DEFAULT_PREFIX),
    };
    // LoadOptions keeps the prefix without a trailing '/', except "/".
    let mut bytes = prefix.into_vec();
    while bytes.len() > 1 && bytes.ends_with(b"/") {
        bytes.pop();
    }
    let prefix = PathBuf::from(OsString::from_vec(bytes));
    let conf_name = o
        .conf_file
        .clone()
        .unwrap_or_else(|| OsString::from(build_info::DEFAULT_CONF_PATH));
    let conf_file = full_name(&prefix, &conf_name);
    let error_log = match &o.error_log {
        Some(e) => e.clone(),
        None if build_info::DEFAULT_ERROR_LOG_PATH == "stderr" => OsString::new(),
        None => OsString::from(build_info::DEFAULT_ERROR_LOG_PATH),
    };
    let default_error_log = if error_log.is_empty() {
        LogTarget::Stderr
    } else {
        LogTarget::File(full_name(&prefix, &error_log))
    };
    LoadOptions {
        prefix,
        conf_file,
        globals: o.globals.as_ref().map(|g| lossy(g.as_bytes())),
        default_error_log,
    }
}

/// `-T`: every file read, in order, as nginx dumps them.
pub fn config_dump(files: &[conf::ConfFile]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in files {
        out.extend_from_slice(b"# configuration file ");
        out.extend_from_slice(f.path.as_os_str().as_bytes());
        out.extend_from_slice(b":\n");
        out.extend_from_slice(f.contents.as_bytes());
        out.push(b'\n');
    }
    out
}

pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    run(args)
}

/// Everything `postern` does for one command line; returns the exit
/// status.
pub fn run(args: Vec<OsString>) -> i32 {
    let o = match parse_options(args) {
        Ok(o) => o,
        Err(text) => {
            logging::stderr_message(format_args!("{text}"));
            return 1;
        }
    };
    if o.show_version {
        let _ = std::io::stderr().write_all(version_info(&o).as_bytes());
        if !o.test_config {
            return 0;
        }
    }

    let opts = load_options(&o);
    // nginx's built-in log: the -e (or default) error log, at notice, or at
    // info while testing; emerg..warn are echoed to the terminal too.
    let level = if o.test_config {
        Level::Info
    } else {
        Level::Notice
    };
    let builtin = Arc::new(Log::builtin(&opts.default_error_log, level));
    logging::install(builtin.clone());

    let test_failed = || {
        if o.test_config {
            logging::stderr_message(format_args!(
                "configuration file {} test failed",
                opts.conf_file.display()
            ));
        }
        1
    };

    // nginx builds the TLS contexts while reading the mail block, so their
    // messages come before "syntax is ok"; the warnings of the checks made
    // once everything is read (and their errors) come after it.
    let mut warnings = Vec::new();
    let mut syntax_ok = false;
    let mut late = Vec::new();
    let loaded = conf::load_with(&opts, &mut |progress| match progress {
        conf::Progress::Warning(w) => {
            if syntax_ok {
                late.push(w.clone());
            } else {
                builtin.write(w.level, None, format_args!("{}", w.text));
            }
            warnings.push(w.clone());
        }
        conf::Progress::SyntaxOk => syntax_ok = true,
    });
    let tls_checked = match &loaded {
        Ok(config) if o.test_config => match tls::check_config(config) {
            Ok(tls_warnings) => {
                for w in &tls_warnings {
                    builtin.write(w.level, None, format_args!("{}", w.text));
                }
                Ok(())
            }
            Err(msg) => Err(msg),
        },
        _ => Ok(()),
    };
    if let Err(msg) = tls_checked {
        builtin.write(msg.level, None, format_args!("{}", msg.text));
        return test_failed();
    }
    if syntax_ok {
        if o.test_config && !o.quiet {
            logging::stderr_message(format_args!(
                "the configuration file {} syntax is ok",
                opts.conf_file.display()
            ));
        }
        for w in &late {
            builtin.write(w.level, None, format_args!("{}", w.text));
        }
    }
    let loaded = match loaded {
        Ok(config) => conf::Loaded { config, warnings },
        Err(msg) => {
            builtin.write(msg.level, None, format_args!("{}", msg.text));
            return test_failed();
        }
    };

    if o.test_config {
        // The checks nginx makes while setting up the cycle: connection
        // limits and a test bind of every listening socket.
        if !process::test_config(&loaded.config) {
            return test_failed();
        }
        // nginx opens (and so creates) every error log while testing.
        if let Err(text) = ConfigLogs::open(&loaded.config) {
            builtin.write(Level::Emerg, None, format_args!("{text}"));
            return test_failed();
        }
        if !o.quiet {
            logging::stderr_message(format_args!(
                "configuration file {} test is successful",
                opts.conf_file.display()
            ));
        }
        if o.dump_config {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&config_dump(&loaded.config.files));
            let _ = out.flush();
        }
        return 0;
    }

    if let Some(signal) = &o.signal {
        return process::send_signal(&loaded, signal);
    }
    process::run(&opts, loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        parse_options(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_group_and_values_attach_or_follow() {
        let o = parse(&["-tq", "-c/etc/p.conf", "-p", "/srv/p/", "-g", "daemon off;"]).unwrap();
        assert!(o.test_config && o.quiet && !o.dump_config);
        assert_eq!(o.conf_file.as_deref(), Some(OsStr::new("/etc/p.conf")));
        assert_eq!(o.prefix.as_deref(), Some(OsStr::new("/srv/p/")));
        assert_eq!(o.globals.as_deref(), Some(OsStr::new("daemon off;")));

        let o = parse(&["-T"]).unwrap();
        assert!(o.test_config && o.dump_config);
        let o = parse(&["-V"]).unwrap();
        assert!(o.show_version && o.show_configure && !o.show_help);
        let o = parse(&["-?"]).unwrap();
        assert!(o.show_version && o.show_help);
        let o = parse(&["-h"]).unwrap();
        assert!(o.show_help);
        // The value ends the argument: "-tc" takes the next word as file.
        let o = parse(&["-tc", "x.conf", "-vq"]).unwrap();
        assert!(o.test_config && o.show_version && o.quiet);
        assert_eq!(o.conf_file.as_deref(), Some(OsStr::new("x.conf")));
        // A lone "-" is accepted and means nothing, as in nginx.
        assert_eq!(parse(&["-"]).unwrap(), Options::default());
        assert_eq!(parse(&[]).unwrap(), Options::default());
    }

    #[test]
    fn error_log_and_signals() {
        assert_eq!(
            parse(&["-e", "stderr"]).unwrap().error_log,
            Some(OsString::new())
        );
        assert_eq!(
            parse(&["-e/var/log/p.log"]).unwrap().error_log,
            Some(OsString::from("/var/log/p.log"))
        );
        for s in SIGNALS {
            assert_eq!(parse(&["-s", s]).unwrap().signal.as_deref(), Some(s));
        }
        assert_eq!(
            parse(&["-sreload"]).unwrap().signal.as_deref(),
            Some("reload")
        );
    }

    #[test]
    fn errors_worded_as_nginx() {
        assert_eq!(parse(&["-x"]).unwrap_err(), "invalid option: \"x\"");
        assert_eq!(parse(&["-vx"]).unwrap_err(), "invalid option: \"x\"");
        assert_eq!(parse(&["foo"]).unwrap_err(), "invalid option: \"foo\"");
        assert_eq!(
            parse(&["-t", "foo"]).unwrap_err(),
            "invalid option: \"foo\""
        );
        assert_eq!(
            parse(&["-s", "foo"]).unwrap_err(),
            "invalid option: \"-s foo\""
        );
        assert_eq!(
            parse(&["-s"]).unwrap_err(),
            "option \"-s\" requires parameter"
        );
        assert_eq!(
            parse(&["-c"]).unwrap_err(),
            "option \"-c\" requires file name"
        );
        assert_eq!(
            parse(&["-e"]).unwrap_err(),
            "option \"-e\" requires file name"
        );
        assert_eq!(
            parse(&["-p"]).unwrap_err(),
            "option \"-p\" requires directory name"
        );
        assert_eq!(
            parse(&["-g"]).unwrap_err(),
            "option \"-g\" requires parameter"
        );
    }

    #[test]
    fn load_options_resolve_against_prefix() {
        let o = parse(&["-p", "/srv/p/", "-c", "mail.conf", "-e", "logs/e.log"]).unwrap();
        let l = load_options(&o);
        assert_eq!(l.prefix, PathBuf::from("/srv/p"));
        assert_eq!(l.conf_file, PathBuf::from("/srv/p/mail.conf"));
        assert_eq!(
            l.default_error_log,
            LogTarget::File(PathBuf::from("/srv/p/logs/e.log"))
        );
        assert_eq!(l.globals, None);

        let o = parse(&[
            "-p",
            "/srv/p",
            "-c",
            "/etc/x.conf",
            "-e",
            "stderr",
            "-g",
            "pid x;",
        ])
        .unwrap();
        let l = load_options(&o);
        assert_eq!(l.conf_file, PathBuf::from("/etc/x.conf"));
        assert_eq!(l.default_error_log, LogTarget::Stderr);
        assert_eq!(l.globals.as_deref(), Some("pid x;"));

        let l = load_options(&Options::default());
        assert_eq!(l.prefix, PathBuf::from(build_info::DEFAULT_PREFIX));
        assert_eq!(
            l.conf_file,
            full_name(
                Path::new(build_info::DEFAULT_PREFIX),
                OsStr::new(build_info::DEFAULT_CONF_PATH)
            )
        );
    }

    #[test]
    fn version_texts() {
        let v = version_info(&parse(&["-v"]).unwrap());
        assert_eq!(
            v,
            format!("postern version: postern/{}\n", build_info::VERSION)
        );
        let h = version_info(&parse(&["-h"]).unwrap());
        assert!(h.contains("Usage: postern [-?hvVtTq] [-s signal] [-p prefix]\n"));
        assert!(h.contains(&format!(
            "  -p prefix     : set prefix path (default: {}/)\n",
            build_info::DEFAULT_PREFIX.trim_end_matches('/')
        )));
        assert!(h.ends_with("configuration file\n\n"));
        let cap = version_info(&parse(&["-V"]).unwrap());
        let lines: Vec<&str> = cap.lines().collect();
        assert!(lines[1].starts_with("built by rustc "));
        assert!(lines[2].starts_with("built with OpenSSL "));
        assert_eq!(lines[3], "TLS SNI support enabled");
        assert!(lines[4].starts_with("configure arguments: --prefix="));
        assert!(lines[4].ends_with(" --with-mail --with-mail_ssl_module"));
    }

    #[test]
    fn dump_format() {
        let files = vec![
            conf::ConfFile {
                path: PathBuf::from("/p/main.conf"),
                contents: "include x.conf;\n".into(),
            },
            conf::ConfFile {
                path: PathBuf::from("/p/x.conf"),
                contents: "daemon off;".into(),
            },
        ];
        assert_eq!(
            String::from_utf8(config_dump(&files)).unwrap(),
            "# configuration file /p/main.conf:\ninclude x.conf;\n\n\
             # configuration file /p/x.conf:\ndaemon off;\n"
        );
    }
}
