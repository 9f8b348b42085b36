//! The command line, exactly nginx's. SKELETON: owned by the cli work.

pub fn main() -> i32 {
    todo!()
}
