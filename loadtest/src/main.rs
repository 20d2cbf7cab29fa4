//! The `loadtest` binary; see the library's docs.

use anyhow::Context;
use clap::Parser;

use loadtest::cli::{Cli, Command};
use loadtest::{consume, null_sink, pipeline, publish, report};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (result, json, report) = match cli.command {
        Command::NullSink { port } => return rt.block_on(null_sink::serve(port)),
        Command::Pipeline(args) => std::process::exit(pipeline::run(&args)?),
        Command::Publish(args) => {
            let (json, report) = (args.publish.json, args.publish.report.clone());
            (rt.block_on(publish::run(args)), json, report)
        }
        Command::Consume(args) => {
            let (json, report) = (args.publish.json, args.publish.report.clone());
            (rt.block_on(consume::run(args)), json, report)
        }
    };
    let (summary, sampler) = result?;
    if let Some(path) = report {
        std::fs::write(&path, report::render(&summary, &sampler.series))
            .with_context(|| format!("writing the report {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    print!("{}", summary.render());
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    if summary.lost.is_some_and(|l| l > 0) || summary.published == 0 {
        std::process::exit(1);
    }
    Ok(())
}
