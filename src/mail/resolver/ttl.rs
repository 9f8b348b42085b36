//! The TTL of an answer, read from the raw DNS response: c-ares parses PTR
//! answers into names only, and the cache keeps a name for as long as the
//! answer says (nginx's resolver does the same with the TTL it reads).
//!
//! Only the header, the question and the answer records' fixed fields are
//! read; names are skipped, compressed or not, and never followed. Any
//! message that does not hold together gives `None`, and the answer is
//! then simply not cached.

/// The smallest TTL among the answer records of `rtype` (nginx reads the
/// 32-bit field as signed and counts a negative TTL as 0).
pub fn min_answer_ttl(msg: &[u8], rtype: u16) -> Option<u32> {
    let qdcount = be16(msg, 4)?;
    let ancount = be16(msg, 6)?;
    let mut at = 12;
    for _ in 0..qdcount {
        at = skip_name(msg, at)? + 4;
    }
    let mut min: Option<u32> = None;
    for _ in 0..ancount {
        at = skip_name(msg, at)?;
        let typ = be16(msg, at)?;
        let ttl = be32(msg, at + 4)?;
        let rdlength = usize::from(be16(msg, at + 8)?);
        at += 10;
        if msg.len() < at + rdlength {
            return None;
        }
        at += rdlength;
        if typ == rtype {
            let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
            min = Some(min.map_or(ttl, |m| m.min(ttl)));
        }
    }
    min
}

/// The offset just past the name at `at`: labels up to a zero byte, or
/// up to a compression pointer (two bytes).
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xc0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            // 0x40 and 0x80 are not in use.
            _ => return None,
        }
    }
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

fn be32(msg: &[u8], at: usize) -> Option<u32> {
    let b = msg.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTR: u16 = 12;
    const CNAME: u16 = 5;

    /// A response to `1.0.0.127.in-addr.arpa PTR` with the given answers
    /// (type, ttl, rdata); the answer owner names are compression
    /// pointers to the question.
    fn response(answers: &[(u16, u32, &[u8])]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        for label in ["1", "0", "0", "127", "in-addr", "arpa"] {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&[0, 12, 0, 1]);
        for (typ, ttl, rdata) in answers {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&typ.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    const NAME: &[u8] = b"\x04mail\x07example\x04test\x00";

    #[test]
    fn smallest_ttl_of_the_type() {
        assert_eq!(min_answer_ttl(&response(&[(PTR, 60, NAME)]), PTR), Some(60));
        assert_eq!(
            min_answer_ttl(
                &response(&[(CNAME, 5, NAME), (PTR, 300, NAME), (PTR, 90, NAME)]),
                PTR
            ),
            Some(90)
        );
        // no record of the type, or none at all
        assert_eq!(min_answer_ttl(&response(&[(CNAME, 5, NAME)]), PTR), None);
        assert_eq!(min_answer_ttl(&response(&[]), PTR), None);
        // a TTL with the top bit set counts as 0, as in nginx
        assert_eq!(
            min_answer_ttl(&response(&[(PTR, 0x8000_0000, NAME)]), PTR),
            Some(0)
        );
    }

    #[test]
    fn broken_messages_give_none() {
        let good = response(&[(PTR, 60, NAME)]);
        for cut in 0..good.len() {
            assert_eq!(min_answer_ttl(&good[..cut], PTR), None, "cut at {cut}");
        }
        // a label type that does not exist
        let mut bad = good.clone();
        bad[12] = 0x41;
        assert_eq!(min_answer_ttl(&bad, PTR), None);
        // rdlength beyond the end
        let mut long = good;
        let n = long.len();
        long[n - NAME.len() - 1] = 0xff;
        assert_eq!(min_answer_ttl(&long, PTR), None);
    }
}
