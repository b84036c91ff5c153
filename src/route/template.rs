//! Resource path templates: `/pets/{petId}`, `/files/{proxy+}`.

/// A parsed, valid resource template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// Parameter names in path order.
    pub(crate) params: Vec<String>,
    /// The same template in matchit's syntax (`{proxy+}` becomes `{*proxy}`).
    pub(crate) matchit: String,
}

/// Letters, digits, `_` and `-` (API Gateway's own samples name a
/// parameter `{stream-name}`).
fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Characters allowed in a literal segment: RFC 3986 `pchar` less `%`
/// (matching is done on the raw path, so a literal must not be encoded).
fn is_literal_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// Parses a template, reporting every problem in it.
pub(crate) fn parse(path: &str) -> Result<Template, Vec<String>> {
    let mut errors = Vec::new();
    if path == "/" {
        return Ok(Template {
            params: Vec::new(),
            matchit: "/".to_owned(),
        });
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(vec!["a resource path must start with `/`".to_owned()]);
    };
    if rest.ends_with('/') {
        errors.push("a resource path must not end with `/`".to_owned());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let mut params: Vec<String> = Vec::new();
    let mut matchit = String::with_capacity(path.len() + 2);
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if seg.is_empty() {
            if !last {
                errors.push("a resource path must not contain an empty segment (`//`)".to_owned());
            }
            continue;
        }
        matchit.push('/');
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if !is_param_name(name) {
                errors.push(format!(
                    "`{seg}` is not a valid parameter (use `{{name}}` or `{{name+}}` with letters, digits, `_` and `-`)"
                ));
                continue;
            }
            if greedy && !last {
                errors.push(format!(
                    "the greedy parameter `{seg}` must be the last segment"
                ));
            }
            if params.iter().any(|p| p == name) {
                errors.push(format!("the parameter `{name}` appears twice"));
            }
            params.push(name.to_owned());
            matchit.push('{');
            if greedy {
                matchit.push('*');
            }
            matchit.push_str(name);
            matchit.push('}');
        } else if seg.bytes().all(is_literal_char) {
            matchit.push_str(seg);
        } else {
            errors.push(format!(
                "`{seg}` is not a valid segment (a literal of letters, digits and `-._~!$&'()*+,;=:@`, or a `{{parameter}}`)"
            ));
        }
    }
    if errors.is_empty() {
        Ok(Template { params, matchit })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_translate_to_matchit() {
        assert_eq!(parse("/pets/{petId}").unwrap().matchit, "/pets/{petId}");
        let t = parse("/files/{proxy+}").unwrap();
        assert_eq!(t.matchit, "/files/{*proxy}");
        assert_eq!(t.params, vec!["proxy"]);
        assert_eq!(parse("/").unwrap().matchit, "/");
    }

    #[test]
    fn bad_templates_report_each_problem() {
        assert!(parse("pets").is_err());
        let e = parse("/a/{p+}/b/{p}/c d/").unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(parse("/a//b").is_err());
        assert!(parse("/a/{}").is_err());
        assert!(parse("/a/x{id}").is_err());
    }
}
