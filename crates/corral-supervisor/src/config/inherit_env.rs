//! `inherit_env`: which of the daemon's own variables a service receives.

use serde::{de, Deserialize, Deserializer};

/// Which of the daemon's environment variables a service inherits, on top
/// of its base environment (see `environment.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum InheritEnv {
    /// None (the default): tokens and credentials of the daemon stay there.
    #[default]
    Nothing,
    /// All of them (`inherit_env = true`).
    All,
    /// Only these names (`inherit_env = ["LANG", "TZ"]`).
    Only(Vec<String>),
}

impl InheritEnv {
    /// Whether the daemon's variable `name` is passed on.
    pub fn passes(&self, name: &str) -> bool {
        match self {
            InheritEnv::Nothing => false,
            InheritEnv::All => true,
            // Windows names are case-insensitive (`Path` is `PATH`).
            InheritEnv::Only(names) if cfg!(windows) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
            InheritEnv::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

impl<'de> Deserialize<'de> for InheritEnv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = InheritEnv;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a list of variable names like [\"LANG\", \"TZ\"]")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<InheritEnv, E> {
                Ok(if v { InheritEnv::All } else { InheritEnv::Nothing })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<InheritEnv, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    if n.is_empty() || n.contains(['=', '\0']) {
                        return Err(de::Error::custom(format!(
                            "{n:?} is not a variable name (no `=`, no NUL, not empty)"
                        )));
                    }
                    names.push(n);
                }
                Ok(InheritEnv::Only(names))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        inherit_env: InheritEnv,
    }

    fn parse(v: &str) -> Result<InheritEnv, String> {
        toml_edit::de::from_str::<T>(&format!("inherit_env = {v}")).map(|t| t.inherit_env).map_err(|e| e.to_string())
    }

    #[test]
    fn a_bool_or_a_list_of_names() {
        assert_eq!(parse("true").unwrap(), InheritEnv::All);
        assert_eq!(parse("false").unwrap(), InheritEnv::Nothing);
        assert_eq!(parse(r#"["LANG", "TZ"]"#).unwrap(), InheritEnv::Only(vec!["LANG".into(), "TZ".into()]));
        assert!(parse(r#"["A=B"]"#).unwrap_err().contains("not a variable name"));
        assert!(parse("3").unwrap_err().contains("true, false, or a list"));
    }

    #[test]
    fn only_listed_names_pass() {
        let only = InheritEnv::Only(vec!["LANG".into()]);
        assert!(only.passes("LANG"));
        assert!(!only.passes("AWS_SECRET_ACCESS_KEY"));
        assert!(!InheritEnv::Nothing.passes("LANG"));
        assert!(InheritEnv::All.passes("ANYTHING"));
    }
}
