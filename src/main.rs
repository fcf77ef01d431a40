#![forbid(unsafe_code)]

fn main() {
    emoscope::util::tune_allocator();
    std::process::exit(emoscope::cli::main());
}
