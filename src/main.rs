fn main() {
    std::process::exit(emoscope::cli::main());
}
