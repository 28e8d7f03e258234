//! The shard contract: which inputs a job has, how they are cut into units, and which
//! units `--shard i/n` takes.
//!
//! - The inputs are either webdataset tar shards (names ending in `.tar`, brace patterns
//!   expanded) — one unit each, in the order given — or image files and folders, walked,
//!   sorted by the bytes of their paths and cut into consecutive groups of
//!   `files_per_unit`. A job never mixes the two.
//! - Shard `i/n` takes the units whose index mod `n` is `i`, and writes partition `i`.
//!
//! So every machine that is given the same inputs computes the same units, and the `n`
//! shards cover every unit exactly once whatever order they run in.

use crate::walk::{self, Problem};
use crate::webdataset::expand_braces;
use crate::JobError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Image files a unit holds by default (`--files-per-unit`).
pub const DEFAULT_FILES_PER_UNIT: usize = 10_000;

/// `--shard i/n`: this process's share of a job cut into `count` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// `i`, in `0..count`.
    pub index: usize,
    /// `n`, at least 1.
    pub count: usize,
}

impl Shard {
    /// The whole job as one partition (`0/1`).
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// `index/count`, checked.
    ///
    /// # Errors
    /// [`JobError::ShardSpec`] when `count` is 0 or `index >= count`.
    pub fn new(index: usize, count: usize) -> Result<Self, JobError> {
        if count == 0 {
            return Err(JobError::ShardSpec {
                spec: format!("{index}/{count}"),
                problem: "the shard count must be at least 1".into(),
            });
        }
        if index >= count {
            return Err(JobError::ShardSpec {
                spec: format!("{index}/{count}"),
                problem: format!(
                    "the shard index must be below the count (0..={})",
                    count - 1
                ),
            });
        }
        Ok(Self { index, count })
    }

    /// Digits of a partition number in file names: clip-retrieval's `int(log10(n)) + 1`.
    pub fn digits(self) -> usize {
        let mut digits = 1;
        let mut n = self.count;
        while n >= 10 {
            n /= 10;
            digits += 1;
        }
        digits
    }

    /// This partition's number as file names hold it (`007` for `7/100`... `7/1000`).
    pub fn padded(self) -> String {
        format!("{:0width$}", self.index, width = self.digits())
    }

    /// Whether the unit of number `unit` belongs to this shard.
    pub fn takes(self, unit: usize) -> bool {
        unit % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = JobError;

    /// `i/n` with `0 <= i < n`, both decimal.
    fn from_str(spec: &str) -> Result<Self, JobError> {
        let bad = |problem: &str| JobError::ShardSpec {
            spec: spec.to_owned(),
            problem: problem.to_owned(),
        };
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| bad("expected i/n, as 0/4"))?;
        let number = |s: &str, what: &str| -> Result<usize, JobError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{what} {s:?} is not a whole number ≥ 0")));
            }
            s.parse()
                .map_err(|_| bad(&format!("{what} {s:?} is too large")))
        };
        let (i, n) = (number(i, "the index")?, number(n, "the count")?);
        Self::new(i, n).map_err(|e| match e {
            JobError::ShardSpec { problem, .. } => bad(&problem),
            other => other,
        })
    }
}

/// One unit of work: a tar shard, or a group of image files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A webdataset shard.
    Shard(PathBuf),
    /// Image files, in byte order of their paths.
    Files(Vec<PathBuf>),
}

/// A job's inputs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// Webdataset tar shards, in the order given.
    Shards(Vec<PathBuf>),
    /// Image files (folders walked), sorted by the bytes of their paths, each once.
    Files(Vec<PathBuf>),
}

fn is_tar(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

impl Inputs {
    /// Resolves command-line inputs: brace patterns are expanded; names ending in `.tar` are
    /// shards (not opened yet: a shard that cannot be read costs that unit when it is
    /// reached); anything else is walked as image files and folders ([`walk::collect`]).
    /// Returns the paths that could not be walked beside.
    ///
    /// # Errors
    /// [`JobError::BracePattern`], [`JobError::MixedInputs`] when shards and image files are
    /// both given, [`JobError::NoInputs`], and [`walk::collect`]'s errors.
    pub fn resolve(inputs: &[PathBuf]) -> Result<(Self, Vec<Problem>), JobError> {
        let mut names = Vec::new();
        for input in inputs {
            match input.to_str() {
                Some(pattern) if pattern.contains('{') => {
                    names.extend(expand_braces(pattern)?.into_iter().map(PathBuf::from));
                }
                _ => names.push(input.clone()),
            }
        }
        if names.is_empty() {
            return Err(JobError::NoInputs);
        }
        let (shards, files): (Vec<PathBuf>, Vec<PathBuf>) =
            names.into_iter().partition(|p| is_tar(p));
        match (shards.first(), files.first()) {
            (Some(shard), Some(file)) => Err(JobError::MixedInputs {
                shard: shard.clone(),
                file: file.clone(),
            }),
            (Some(_), None) => Ok((Self::Shards(shards), Vec::new())),
            _ => {
                let (mut paths, problems) = walk::collect(&files)?;
                paths.sort_by(|a, b| path_bytes(a).cmp(path_bytes(b)));
                paths.dedup();
                Ok((Self::Files(paths), problems))
            }
        }
    }

    /// The units, numbered by position: one per shard, or consecutive groups of
    /// `files_per_unit` files (at least 1).
    pub fn units(&self, files_per_unit: usize) -> Vec<Unit> {
        match self {
            Self::Shards(shards) => shards.iter().cloned().map(Unit::Shard).collect(),
            Self::Files(files) => files
                .chunks(files_per_unit.max(1))
                .map(|c| Unit::Files(c.to_vec()))
                .collect(),
        }
    }

    /// Whether the inputs are tar shards.
    pub fn are_shards(&self) -> bool {
        matches!(self, Self::Shards(_))
    }
}

/// The units `shard` takes, with their numbers, in order.
pub fn select(units: Vec<Unit>, shard: Shard) -> Vec<(usize, Unit)> {
    units
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.takes(*i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_or_say_what_is_wrong() {
        assert_eq!("0/1".parse::<Shard>().unwrap(), Shard::WHOLE);
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        for (spec, says) in [
            ("3/3", "below the count"),
            ("0/0", "at least 1"),
            ("-1/2", "not a whole number"),
            ("1/x", "not a whole number"),
            ("1", "expected i/n"),
            ("1/2/3", "not a whole number"),
            ("/2", "not a whole number"),
            ("99999999999999999999999/1", "too large"),
        ] {
            let e = spec.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn partition_numbers_are_padded_as_clip_retrieval_pads_them() {
        let pad = |i, n| Shard::new(i, n).unwrap().padded();
        assert_eq!(pad(0, 1), "0");
        assert_eq!(pad(3, 9), "3");
        assert_eq!(pad(3, 10), "03");
        assert_eq!(pad(42, 100), "042");
        assert_eq!(pad(7, 99), "07");
    }

    #[test]
    fn shards_cover_every_unit_exactly_once() {
        for n in 1..7 {
            let mut seen = vec![0; 23];
            for i in 0..n {
                let units: Vec<Unit> = (0..23)
                    .map(|u| Unit::Shard(PathBuf::from(u.to_string())))
                    .collect();
                for (u, _) in select(units, Shard::new(i, n).unwrap()) {
                    seen[u] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "n={n}: {seen:?}");
        }
    }

    #[test]
    fn files_are_sorted_by_bytes_and_grouped() {
        let tmp = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(d.join("a")).unwrap();
        // Component order puts `a/z.png` before `a-b.png`; byte order ('-' < '/') does not.
        for f in ["a/z.png", "a-b.png", "c.jpg", "B.jpg"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let (inputs, problems) = Inputs::resolve(std::slice::from_ref(&d)).unwrap();
        assert!(problems.is_empty());
        let Inputs::Files(files) = &inputs else {
            panic!("{inputs:?}")
        };
        let rel: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["B.jpg", "a-b.png", "a/z.png", "c.jpg"]);
        let units = inputs.units(3);
        assert_eq!(units.len(), 2);
        assert_eq!(units[1], Unit::Files(vec![d.join("c.jpg")]));
    }

    #[test]
    fn tar_names_and_brace_patterns_are_shards_in_the_order_given() {
        let (inputs, _) =
            Inputs::resolve(&["s/{00002..00003}.tar".into(), "s/00000.TAR".into()]).unwrap();
        assert_eq!(
            inputs,
            Inputs::Shards(vec![
                "s/00002.tar".into(),
                "s/00003.tar".into(),
                "s/00000.TAR".into()
            ])
        );
        let mixed = Inputs::resolve(&["a.tar".into(), "b.jpg".into()]).unwrap_err();
        assert!(mixed.to_string().contains("a.tar"), "{mixed}");
        assert!(matches!(
            Inputs::resolve(&[]).unwrap_err(),
            JobError::NoInputs
        ));
    }
}
