//! containerd-shim-robust-v2: a containerd runtime v2 shim. This binary only
//! parses the command line and dispatches; the work lives in the library
//! crates (reaper, runtime, cleanup, service).

mod args;
mod daemon;
mod delete;
mod logger;
mod server;
mod start;
mod sweep;
mod usage;

use std::process::ExitCode;

fn main() -> ExitCode {
    // args_os: an argument that is not UTF-8 is an error, not a panic.
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e @ args::ArgsError::Usage(_)) => return usage_error(&e.to_string()),
        Err(e) => {
            eprintln!("containerd-shim-robust-v2: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if args.help {
        print!("{}", usage::text());
        return ExitCode::SUCCESS;
    }
    if let Some(e) = args.refused_unknown() {
        return usage_error(&e);
    }
    if args.version {
        println!(
            "containerd-shim-robust-v2:\n  Version:  {}\n  Runtime:  io.containerd.robust.v2\n  Task API: v2, v3",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let res = match args.action.as_str() {
        "start" => {
            // containerd 1.6 reads start's stdout and stderr together as the
            // address: log to the bundle's shim log instead, never stderr.
            let out: Box<dyn std::io::Write + Send> =
                match logger::open_log_fifo(std::path::Path::new("log")) {
                    Some(f) => Box::new(f),
                    None => Box::new(std::io::sink()),
                };
            logger::init(out, log::LevelFilter::Info, &args.namespace);
            start::run(args)
        }
        "delete" => {
            // containerd logs whatever `delete` writes on stderr as a
            // warning, and runs it after every shim exit: nothing is
            // written unless something is logged at warn (logger docs).
            logger::init_held(
                Box::new(std::io::stderr()),
                if args.debug {
                    log::LevelFilter::Debug
                } else {
                    log::LevelFilter::Info
                },
                &args.namespace,
            );
            delete::run(args)
        }
        "sweep" => {
            logger::init(
                Box::new(std::io::stderr()),
                log::LevelFilter::Info,
                &args.namespace,
            );
            sweep::run(args)
        }
        "" if args.info => info(),
        "" => daemon::run(args),
        other => {
            return usage_error(&format!(
                "unknown action {other:?} (expected start, delete or sweep)"
            ))
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd-shim-robust-v2: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A malformed command line: the error, then the usage, on stderr; exit 2
/// (as Go's `flag` package).
fn usage_error(e: &str) -> ExitCode {
    eprint!("containerd-shim-robust-v2: {e}\n\n{}", usage::text());
    ExitCode::from(2)
}

/// `-info`: containerd 2.x asks for the runtime's name and version.
fn info() -> anyhow::Result<()> {
    use containerd_shim_protos::protobuf::{Message, MessageField};
    use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    use std::io::Write;
    let mut v = RuntimeVersion::new();
    v.version = env!("CARGO_PKG_VERSION").to_string();
    let mut i = RuntimeInfo::new();
    i.name = "io.containerd.robust.v2".to_string();
    i.version = MessageField::some(v);
    std::io::stdout().write_all(&i.write_to_bytes()?)?;
    Ok(())
}
