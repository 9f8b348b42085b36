fn main() {
    std::process::exit(postern::cli::main());
}
