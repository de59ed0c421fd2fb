//! The `tandem` binary: parses nothing itself, hands over to [`tandem::cli::main`].

fn main() -> std::process::ExitCode {
    tandem::cli::main()
}
