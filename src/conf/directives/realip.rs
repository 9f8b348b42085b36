//! `set_real_ip_from`: which peers may tell the client's address through
//! the PROXY protocol.

use super::events::host_cidr;
use super::{arg, args, fail, Cmd, Eval, MAIL, SRV};
use crate::conf::model::Cidr;
use crate::conf::parser::Directive;
use crate::conf::url::parse_cidr;
use crate::conf::{sys, ConfMessage};

pub const COMMANDS: &[Cmd] = &[Cmd {
    name: "set_real_ip_from",
    contexts: MAIL | SRV,
    args: args::TAKE1,
    handler: from,
}];

fn from(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let v = arg(d, 0);
    let mut found = if v == "unix:" {
        vec![Cidr::Unix]
    } else if let Some((c, low_bits)) = parse_cidr(v) {
        if low_bits {
            ev.warn(format!("low address bits of {v} are meaningless"), d);
        }
        vec![c]
    } else {
        let ips = sys::resolve_host(v)
            .ok_or_else(|| fail(d, format!("host not found in set_real_ip_from \"{v}\"")))?;
        ips.into_iter().map(host_cidr).collect()
    };
    ev.srv()
        .set_real_ip_from
        .get_or_insert_with(Vec::new)
        .append(&mut found);
    Ok(())
}
