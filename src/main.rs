use clap::Parser;

fn main() {
    let cli = kubeboot::cli::Cli::parse();
    if let Err(err) = kubeboot::cli::run(cli) {
        eprintln!("error: {err:#}");
        if kubeboot::output::json() {
            kubeboot::output::emit(
                serde_json::json!({"event": "error", "message": format!("{err:#}")}),
            );
        }
        std::process::exit(1);
    }
}
