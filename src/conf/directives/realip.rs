//! `set_real_ip_from`: which peers may tell the client's address through
//! the PROXY protocol.

use super::events::networks;
use super::{args, Cmd, Eval, MAIL, SRV};
use crate::conf::parser::Directive;
use crate::conf::ConfMessage;

pub const COMMANDS: &[Cmd] = &[Cmd {
    name: "set_real_ip_from",
    contexts: MAIL | SRV,
    args: args::TAKE1,
    handler: from,
}];

fn from(ev: &mut Eval, d: &Directive) -> Result<(), ConfMessage> {
    let mut found = networks(ev, d)?;
    ev.srv()
        .set_real_ip_from
        .get_or_insert_with(Vec::new)
        .append(&mut found);
    Ok(())
}
