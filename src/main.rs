//! The `moeplan` binary: parse arguments, set up logging, run one command, map errors to exit codes.

fn main() -> std::process::ExitCode {
    moeplan::cli_main()
}
