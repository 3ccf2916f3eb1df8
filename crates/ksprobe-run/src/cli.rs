//! Command line: which scenarios, and the configuration they run with.

use clap::Parser;
use ks_abi::ks::allocator_flags;
use ksprobe_scenarios::path::to_nt_path;
use ksprobe_scenarios::wire::{Request, MAX_PATH_UNITS};
use ksprobe_scenarios::{Config, ScenarioId};

/// Runs ksprobe's kernel-mode scenarios against the installed ksalloc filter.
///
/// Needs an elevated prompt: ksprobe's control device admits SYSTEM and
/// Administrators only.
#[derive(Debug, Parser)]
#[command(name = "ksprobe-run", version)]
pub struct Args {
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,

    /// Run only these scenarios (names from --list), in run order.
    #[arg(long, num_args = 1.., value_name = "NAME", value_parser = scenario)]
    pub only: Vec<ScenarioId>,

    /// The ksalloc filter's device interface path (\\?\... as SetupAPI or KsStudio shows
    /// it). Default: ksprobe finds the KSCATEGORY_DATATRANSFORM interface served by
    /// \Driver\ksalloc.
    #[arg(long, value_name = "PATH")]
    pub filter: Option<String>,

    /// Pin factory the allocators hang off.
    #[arg(long, default_value_t = Config::DEFAULT.pin_id)]
    pub pin: u32,

    /// Frames per allocator.
    #[arg(long, default_value_t = Config::DEFAULT.framing.frames)]
    pub frames: u32,

    /// Bytes per frame.
    #[arg(long, default_value_t = Config::DEFAULT.framing.frame_size)]
    pub frame_size: u32,

    /// Frame alignment in bytes (a power of two up to 4096).
    #[arg(long, default_value_t = Config::DEFAULT.framing.file_alignment + 1)]
    pub alignment: u32,

    /// Frames alloc_free_dispatch takes and writes (at most --frames).
    #[arg(long, default_value_t = Config::DEFAULT.frames_to_touch)]
    pub touch: u32,

    /// AllocateFrame + FreeFrame pairs time_alloc_free times.
    #[arg(long, default_value_t = Config::DEFAULT.timing_pairs)]
    pub pairs: u32,

    /// How long to wait for a request or event that should complete, in ms.
    #[arg(long, default_value_t = Config::DEFAULT.wait_ms)]
    pub wait_ms: u32,

    /// Slowest acceptable failing AllocateFrame on an empty pool, in microseconds.
    #[arg(long, default_value_t = Config::DEFAULT.fast_fail_ns / 1000)]
    pub fast_fail_us: u64,
}

fn scenario(name: &str) -> Result<ScenarioId, String> {
    ScenarioId::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = ScenarioId::ALL.iter().map(|id| id.name()).collect();
        format!("no scenario `{name}`; one of: {}", names.join(", "))
    })
}

impl Args {
    /// The request these arguments describe.
    ///
    /// # Errors
    /// A configuration the scenarios would refuse, or a path too long.
    pub fn request(&self) -> Result<Request, String> {
        if !self.alignment.is_power_of_two() {
            return Err(format!(
                "--alignment {} is not a power of two",
                self.alignment
            ));
        }
        let mut config = Config {
            pin_id: self.pin,
            frames_to_touch: self.touch,
            timing_pairs: self.pairs,
            wait_ms: self.wait_ms,
            fast_fail_ns: self.fast_fail_us.saturating_mul(1000),
            ..Config::DEFAULT
        };
        config.framing.frames = self.frames;
        config.framing.frame_size = self.frame_size;
        config.framing.file_alignment = self.alignment - 1;
        config.framing.options_flags = allocator_flags::REQUIREMENTF_SYSTEM_MEMORY;
        config.check().map_err(str::to_owned)?;
        let path = self.filter.as_deref().map_or_else(Vec::new, |p| {
            to_nt_path(&p.encode_utf16().collect::<Vec<u16>>())
        });
        if path.len() > MAX_PATH_UNITS {
            return Err(format!(
                "--filter is longer than {MAX_PATH_UNITS} characters"
            ));
        }
        Ok(Request {
            selection: ScenarioId::mask_of(&self.only),
            config,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ksprobe-run").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_scenarios_defaults() {
        let request = parse(&[]).unwrap().request().unwrap();
        assert_eq!(request, Request::all());
    }

    #[test]
    fn only_and_configuration() {
        let args = parse(&[
            "--only",
            "pending_fifo",
            "open_chain",
            "--frames",
            "16",
            "--alignment",
            "512",
            "--pairs",
            "5",
            "--filter",
            "\\\\?\\root#media#0000#{x}\\{y}",
        ])
        .unwrap();
        let request = args.request().unwrap();
        assert_eq!(
            request.scenarios(),
            [ScenarioId::OpenChain, ScenarioId::PendingFifo]
        );
        assert_eq!(request.config.framing.frames, 16);
        assert_eq!(request.config.framing.file_alignment, 511);
        assert_eq!(request.config.timing_pairs, 5);
        assert_eq!(
            String::from_utf16(&request.path).unwrap(),
            "\\??\\root#media#0000#{x}\\{y}"
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = parse(&["--only", "nope"]).unwrap_err().to_string();
        assert!(err.contains("one of: open_chain"), "{err}");
        assert!(parse(&["--alignment", "3"]).unwrap().request().is_err());
        assert!(parse(&["--frames", "0"]).unwrap().request().is_err());
        assert!(parse(&["--pairs", "0"]).unwrap().request().is_err());
    }
}
