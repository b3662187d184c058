fn main() {
    std::process::exit(ov::cli::main());
}
