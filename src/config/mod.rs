//! The vocabulary every capability's config slice shares: errors that name
//! the path of each problem, and sizes.
//!
//! A config is checked whole: every problem is collected, each with the path
//! of the field it concerns, into one [`ConfigError`].
//!
//! ```
//! use tollgate::Config;
//! use tollgate::config::{ByteSize, ConfigErrorKind};
//!
//! let err = Config::from_yaml_str("routes: {}\nstages: {}\n").unwrap_err();
//! assert_eq!(err.kind(), ConfigErrorKind::Invalid);
//! assert_eq!(err.issues()[0].path(), "routes");
//! assert_eq!(ByteSize::parse("64MiB"), Some(ByteSize(64 << 20)));
//! ```

mod error;
mod overlay;
mod size;

pub use self::error::{ConfigError, ConfigErrorKind, ConfigIssue};
pub(crate) use self::error::{Issues, PathBuf, push_field};
pub(crate) use self::overlay::{Merged, Overlay};
pub use self::size::ByteSize;
