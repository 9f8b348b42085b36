//! Building nginx-worded configuration messages.

use super::model::{Level, Origin};
use super::ConfMessage;

/// Where `-g` directives come from: nginx names it "command line" and
/// gives no line number.
pub const COMMAND_LINE: &str = "command line";

/// ` in /etc/postern/postern.conf:12`, or ` in command line`.
pub fn location(origin: &Origin) -> String {
    if origin.line == 0 {
        format!(" in {COMMAND_LINE}")
    } else {
        format!(" in {}:{}", origin.file.display(), origin.line)
    }
}

/// An `[emerg]` message with its location appended.
pub fn emerg_at(text: impl AsRef<str>, origin: &Origin) -> ConfMessage {
    ConfMessage {
        level: Level::Emerg,
        text: format!("{}{}", text.as_ref(), location(origin)),
    }
}

/// A `[warn]` message with its location appended.
pub fn warn_at(text: impl AsRef<str>, origin: &Origin) -> ConfMessage {
    ConfMessage {
        level: Level::Warn,
        text: format!("{}{}", text.as_ref(), location(origin)),
    }
}

/// An `[emerg]` message used as is (it already says where, or nginx says
/// nowhere).
pub fn emerg(text: impl Into<String>) -> ConfMessage {
    ConfMessage {
        level: Level::Emerg,
        text: text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn locations() {
        let o = Origin {
            file: PathBuf::from("/etc/p.conf"),
            line: 3,
        };
        assert_eq!(emerg_at("x", &o).text, "x in /etc/p.conf:3");
        let cl = Origin {
            file: PathBuf::from(COMMAND_LINE),
            line: 0,
        };
        assert_eq!(warn_at("y", &cl).text, "y in command line");
        assert_eq!(warn_at("y", &cl).level, Level::Warn);
    }
}
