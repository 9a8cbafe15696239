//! The process-wide provider registry, filled by [`provider!`](crate::provider).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::ProviderParser;

/// One registered provider. Built in a `static` by [`provider!`](crate::provider).
pub struct Registration {
    parser: &'static dyn ProviderParser,
}

impl Registration {
    /// Wraps a parser for registration.
    pub const fn new(parser: &'static dyn ProviderParser) -> Registration {
        Registration { parser }
    }
}

inventory::collect!(Registration);

/// Every registered provider, by id and alias.
pub struct Registry {
    by_id: BTreeMap<&'static str, &'static dyn ProviderParser>,
    by_alias: BTreeMap<&'static str, &'static str>,
}

impl Registry {
    /// Builds a registry from parsers. Two parsers claiming one id or alias is an error naming it.
    pub fn build(
        parsers: impl IntoIterator<Item = &'static dyn ProviderParser>,
    ) -> Result<Registry, String> {
        let mut by_id: BTreeMap<&'static str, &'static dyn ProviderParser> = BTreeMap::new();
        for parser in parsers {
            if by_id.insert(parser.id(), parser).is_some() {
                return Err(format!(
                    "two providers are registered with the id `{}`",
                    parser.id()
                ));
            }
        }
        let mut by_alias = BTreeMap::new();
        for parser in by_id.values() {
            for alias in parser.aliases() {
                if by_id.contains_key(alias) || by_alias.insert(*alias, parser.id()).is_some() {
                    return Err(format!("the provider alias `{alias}` is claimed twice"));
                }
            }
        }
        Ok(Registry { by_id, by_alias })
    }

    /// A provider by id or alias (case-insensitive).
    pub fn get(&self, id_or_alias: &str) -> Option<&'static dyn ProviderParser> {
        let lower = id_or_alias.to_ascii_lowercase();
        let id = self
            .by_alias
            .get(lower.as_str())
            .copied()
            .unwrap_or(lower.as_str());
        self.by_id.get(id).copied()
    }

    /// Every provider, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn ProviderParser> + '_ {
        self.by_id.values().copied()
    }

    /// Every provider id, sorted.
    pub fn ids(&self) -> Vec<&'static str> {
        self.by_id.keys().copied().collect()
    }
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    match Registry::build(inventory::iter::<Registration>().map(|r| r.parser)) {
        Ok(registry) => registry,
        // A duplicate id is a build mistake that must stop the process before it serves.
        #[allow(clippy::panic)]
        Err(message) => panic!("{message}"),
    }
});

/// The registry of every provider linked into this binary.
///
/// # Panics
/// On first use, if two linked providers claim the same id or alias.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Declaration, Declared, Parsed, RawRequest, Result, Signature};

    struct Fake(&'static Declaration);

    impl Declared for Fake {
        fn declaration(&self) -> &'static Declaration {
            self.0
        }
    }

    impl ProviderParser for Fake {
        fn parse(&self, _: &RawRequest<'_>) -> Result<Parsed> {
            Ok(Parsed::default())
        }
    }

    const fn declaration(id: &'static str, aliases: &'static [&'static str]) -> Declaration {
        Declaration {
            id,
            aliases,
            channel: Channel::Email,
            signature: Signature::None,
            media_types: &[],
            accepts_get: false,
            signs_url: false,
            options: &[],
            demo_options: &[],
            credential_headers: &[],
        }
    }

    static A: Fake = Fake(&declaration("alpha", &["first"]));
    static B: Fake = Fake(&declaration("beta", &[]));
    static A2: Fake = Fake(&declaration("alpha", &[]));
    static C: Fake = Fake(&declaration("gamma", &["first"]));

    #[test]
    fn lookups_by_id_and_alias_sorted() {
        let registry = Registry::build([&B as &dyn ProviderParser, &A]).unwrap();
        assert_eq!(registry.ids(), vec!["alpha", "beta"]);
        assert_eq!(registry.get("first").unwrap().id(), "alpha");
        assert_eq!(registry.get("BETA").unwrap().id(), "beta");
        assert!(registry.get("nope").is_none());
    }

    #[test]
    fn duplicates_fail_loudly() {
        let err = Registry::build([&A as &dyn ProviderParser, &A2])
            .err()
            .unwrap();
        assert!(err.contains("`alpha`"), "{err}");
        let err = Registry::build([&A as &dyn ProviderParser, &C])
            .err()
            .unwrap();
        assert!(err.contains("`first`"), "{err}");
    }
}
