//! `${env:VAR}` and `${env:VAR:-default}` substitution in the configuration text.
//!
//! Done on the raw text before YAML parsing (as the OpenTelemetry Collector does), so a value can be
//! substituted anywhere, including inside a string. `$$` escapes a literal `$`.

use super::ConfigError;

/// Replaces every `${env:NAME}` with `lookup(NAME)`; a missing variable without a default is an error.
pub fn substitute_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            offset += i + 2;
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${env:") {
            let end = after
                .find('}')
                .ok_or(ConfigError::BadEnvReference(offset + i))?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError::BadEnvReference(offset + i));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(ConfigError::MissingEnv(name.to_string())),
            }
            let consumed = i + "${env:".len() + end + 1;
            offset += consumed;
            rest = &rest[consumed..];
        } else {
            out.push('$');
            offset += i + 1;
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn substitutes_and_defaults() {
        let out = substitute_env("a: ${env:TOKEN}\nb: x${env:NOPE:-dflt}y", env).unwrap();
        assert_eq!(out, "a: s3cret\nb: xdflty");
    }

    #[test]
    fn escapes_and_plain_dollars() {
        assert_eq!(
            substitute_env("$$ {env:X} $5", env).unwrap(),
            "$ {env:X} $5"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = substitute_env("x: ${env:NOPE}", env).unwrap_err();
        assert!(
            matches!(err, ConfigError::MissingEnv(ref n) if n == "NOPE"),
            "{err}"
        );
    }

    #[test]
    fn malformed_reference_is_refused() {
        assert!(matches!(
            substitute_env("x: ${env:NOPE", env),
            Err(ConfigError::BadEnvReference(3))
        ));
        assert!(substitute_env("x: ${env:BAD NAME}", env).is_err());
    }
}
