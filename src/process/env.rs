//! The `env` directive: workers (and a new binary) see only the variables
//! the configuration names, plus TZ, as in nginx.

use crate::conf::EnvVar;

/// The environment for workers and a new binary: for each `env` entry in
/// order, `NAME=value` sets a variable and `NAME` keeps the inherited one
/// if present; TZ is kept unless the configuration mentions it.
pub fn compute(conf: &[EnvVar], inherited: &[(String, String)]) -> Vec<(String, String)> {
    let mut wanted: Vec<EnvVar> = conf.to_vec();
    if !wanted.iter().any(|v| v.name == "TZ") {
        wanted.push(EnvVar {
            name: "TZ".into(),
            value: None,
        });
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for v in wanted {
        let value = match v.value {
            Some(val) => Some(val),
            None => inherited
                .iter()
                .find(|(k, _)| *k == v.name)
                .map(|(_, val)| val.clone()),
        };
        if let Some(val) = value {
            out.retain(|(k, _)| *k != v.name);
            out.push((v.name, val));
        }
    }
    out
}

/// The current process environment as strings (non-UTF-8 entries, which
/// `env` cannot name anyway, are skipped).
pub fn current() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Replace this process's environment (only in a freshly forked,
/// single-threaded worker or single process).
pub fn apply(vars: &[(String, String)]) {
    for (k, _) in std::env::vars_os() {
        std::env::remove_var(k);
    }
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: Option<&str>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.map(String::from),
        }
    }

    #[test]
    fn keeps_named_sets_values_and_tz() {
        let inherited = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("TZ".to_string(), "UTC".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let conf = vec![
            var("PATH", None),
            var("MODE", Some("x=y")),
            var("NOPE", None),
        ];
        assert_eq!(
            compute(&conf, &inherited),
            vec![
                ("PATH".to_string(), "/bin".to_string()),
                ("MODE".to_string(), "x=y".to_string()),
                ("TZ".to_string(), "UTC".to_string()),
            ]
        );
        // An explicit TZ wins and is not duplicated.
        assert_eq!(
            compute(&[var("TZ", Some("Europe/Paris"))], &inherited),
            vec![("TZ".to_string(), "Europe/Paris".to_string())]
        );
    }
}
