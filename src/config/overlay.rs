//! The overlay every per-method slice goes through: a stage's `settings`,
//! then `methods."*/*"`, then `methods."RESOURCE/*"`, then
//! `methods."RESOURCE/METHOD"`, each replacing only the fields it names
//! (API Gateway's method settings overrides, "Override stage-level settings"
//! in the developer guide).
//!
//! A slice says how it is laid over itself ([`Overlay`]); [`Merged`] carries
//! the result together with the path of the deepest layer that named the
//! slice, so an error about the merged value (a rate without a burst, an
//! unknown authorizer) is reported where the user wrote the last part of it.

use super::PathBuf;

/// A settings slice that can be laid over another of its kind.
///
/// The default replaces the whole value: right for scalars and for slices
/// that are one choice (an integration, a mapping). Slices whose fields can
/// be overridden one by one (`throttle`, `cache`) merge field by field.
pub(crate) trait Overlay: Clone {
    /// Lays `over` on top of `self`.
    fn overlay(&mut self, over: &Self) {
        self.clone_from(over);
    }
}

impl Overlay for bool {}
impl Overlay for String {}
impl Overlay for u64 {}
/// A list is one choice: the deepest layer that names it replaces it whole.
impl Overlay for Vec<String> {}
/// A map is one choice too (`request_parameters`, `request_models`).
impl<V: Clone> Overlay for std::collections::BTreeMap<String, V> {}

/// One slice, merged across the layers of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Merged<T> {
    /// The merged value; `None` when no layer names the slice.
    pub(crate) value: Option<T>,
    /// Where the deepest layer that named the slice is (its settings block,
    /// such as `stages.prod.methods."/pets/GET"`); the first layer's path
    /// when none did.
    pub(crate) path: PathBuf,
    /// How deep that layer is: 0 for the stage's settings, counting up.
    pub(crate) depth: usize,
}

impl<T: Overlay> Merged<T> {
    /// Merges the slice `pick` chooses from each of `layers`, outermost
    /// first. `layers` is never empty: the stage's settings come first.
    pub(crate) fn of<'a, L: 'a>(
        layers: &[(&'a L, &PathBuf)],
        pick: impl Fn(&'a L) -> Option<&'a T>,
    ) -> Self
    where
        T: 'a,
    {
        let mut merged: Merged<T> = Merged {
            value: None,
            path: layers.first().map(|l| l.1.clone()).unwrap_or_default(),
            depth: 0,
        };
        for (depth, (layer, path)) in layers.iter().enumerate() {
            let Some(over) = pick(layer) else { continue };
            match &mut merged.value {
                Some(value) => value.overlay(over),
                None => merged.value = Some(over.clone()),
            }
            merged.path = (*path).clone();
            merged.depth = depth;
        }
        merged
    }
}
