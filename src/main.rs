use clap::Parser;

fn main() {
    let cli = kubeboot::cli::Cli::parse();
    if let Err(err) = kubeboot::cli::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
