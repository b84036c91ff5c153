//! Tests of the template bound.

use minijinja::{Environment, Error};

use super::*;

fn bounded_env(limit: usize) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(1_000_000));
    register(&mut env, limit);
    env
}

fn render(env: &Environment<'static>, source: &str) -> Result<String, Error> {
    let ctx = minijinja::context! {
        name => "pet", items => vec![1, 2, 3], word => "a-b-c",
        obj => minijinja::context! { k => "v", n => 2 },
    };
    env.render_str(source, ctx)
}

#[test]
fn rewritten_templates_render_as_the_originals() {
    let plain = Environment::new();
    let bounded = bounded_env(10 << 20);
    for source in [
        "{{ name ~ '-' ~ name|upper }}",
        "{{ (name ~ 'x')|upper ~ (items|join(',')) }}",
        "{{ ((name))|length }} {{ (obj).k ~ obj['n'] }}",
        "{{ items|map('string')|join('+') }}",
        "{{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ 2 * 3 }} {{ 2.5 * 2 }} {{ items * 2 }}",
        "{{ items + [4] }} {{ 1 + 2 }} {{ 'a' + 'b' }}",
        "{% set ns = namespace(s='') %}{% for i in items %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}",
        "{{ word|replace('-', '+') }} {{ word|indent(2) }} {{ obj|tojson }} {{ '%s=%d'|format('a', 1) }}",
        "{{ name if items|length > 2 else 'none' }} {{ -(items|length) }} {{ not name }}",
        "{{ items[1:] }} {{ items|batch(2)|list }} {{ items|slice(2)|list }} {{ range(3)|list }}",
        "{% with x = name ~ '!' %}{{ x }}{% endwith %}{% if name is defined and name is string %}y{% endif %}",
        "{{ dict(a=name ~ 1, b=items)|tojson }} {{ obj|items|list }} {{ 'x'|default('y' ~ 'z') }}",
        "{{ name ~ (items | join) ~ ( 'q' ) }}{{ (items|first) ~ (items|last) }}",
    ] {
        let rewritten = rewrite(source).unwrap().source;
        assert_eq!(
            render(&bounded, &rewritten).unwrap(),
            render(&plain, source).unwrap(),
            "{source}\n  rewritten: {rewritten}"
        );
    }
}

#[test]
fn doubling_stops_at_the_limit() {
    let env = bounded_env(1 << 20);
    let bomb = r#"{% set ns = namespace(s="xxxxxxxxxx") %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"#;
    let e = render(&env, &rewrite(bomb).unwrap().source).unwrap_err();
    assert!(e.to_string().contains("size limit"), "{e}");
    for bomb in [
        "{{ 'x' * 2000000 }}",
        "{{ range(100000)|join('yyyyyyyyyyyyyyyyyyyy') }}",
        "{{ 'abc'|replace('', 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz' * 20000) }}",
        "{{ 'a\nb'|indent(10000000) }}",
        "{{ '%99999999s'|format('a') }}",
        "{{ [1]|batch(10000000, 'x')|list|length }}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|join }}",
        "{% set ns = namespace(l=['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx']) %}{% for i in range(40) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|string|length }}",
        "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns ~ '' }}",
        "{{ (['x' * 100000] * 100)|string|length }}",
        "{% set s = 'x' * 100000 %}{% set a = [s,s,s,s,s,s,s,s,s,s] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}{{ b|string|length }}",
        "{% set s = 'x' * 100000 %}{% set a = [s,s,s,s,s,s,s,s,s,s] %}{% set b = {'k': a, 'l': a} %}{% set c = [b, b, b, b, b, b] %}{{ c|tojson|length }}",
        "{% set ns = namespace(s='\"') %}{% for i in range(30) %}{% set ns.s = ns.s|tojson %}{% endfor %}{{ ns.s|length }}",
    ] {
        let e = render(&env, &rewrite(bomb).unwrap().source).unwrap_err();
        assert!(
            e.to_string().contains("size limit") || e.to_string().contains("at most"),
            "{bomb}: {e}"
        );
    }
}

#[test]
fn what_cannot_be_bounded_is_refused_with_its_line() {
    for (source, line) in [
        ("a\n{% set x %}{{ y }}{% endset %}", 2),
        ("{% filter upper %}x{% endfilter %}", 1),
        ("\n\n{% macro m(x) %}{{ x }}{% endmacro %}", 3),
        ("{% for x in y recursive %}{{ loop(x) }}{% endfor %}", 1),
        ("{% include 'other' %}", 1),
        ("{% set __tollgate_sized = 1 %}", 1),
        ("{{ __tollgate_sized('x') }}", 1),
        ("{% set input = 1 %}", 1),
        ("{% for util in [1] %}{% endfor %}", 1),
    ] {
        match rewrite(source) {
            Err(Unbounded::Unsupported { line: l, .. }) => assert_eq!(l, line, "{source}"),
            other => panic!("{source}: {other:?}"),
        }
    }
    assert_eq!(rewrite("{{ a ~ }}"), Err(Unbounded::Syntax));
}

#[test]
fn many_values_each_under_the_limit_do_not_add_up_past_the_budget() {
    // Reported by the hostile review: each value was bounded, their sum was
    // not (30 concatenations of a 10 MB string: 316 MB).
    let env = bounded_env(1 << 20);
    let items: Vec<String> = (0..30).map(|i| format!("s ~ '{i}'")).collect();
    let list = format!(
        "{{% set s = 'x' * 1000000 %}}{{% set ns = namespace() %}}{{% set ns.l = [{}] %}}{{{{ ns.l|length }}}}",
        items.join(", ")
    );
    let tojson: String = (0..10)
        .map(|i| format!("{{% set ns.a{i} = s|tojson %}}"))
        .collect();
    for bomb in [
        list,
        format!("{{% set s = '\x01' * 1000000 %}}{{% set ns = namespace() %}}{tojson}ok"),
        // A string exploded into items: a list of a million characters.
        "{{ ('x' * 1000000)|list|length }}".to_owned(),
        "{{ ('x' * 1000000)|select|list|length }}".to_owned(),
        "{{ ('a ' * 500000)|split|length }}".to_owned(),
        // Measuring a big list again and again: bounded in work, not only memory.
        "{% set l = ('x' * 100000)|batch(1)|list %}{% for i in range(20000) %}{% set y = [l] %}{% endfor %}done".to_owned(),
    ] {
        let e = render(&env, &rewrite(&bomb).unwrap().source).unwrap_err().to_string();
        assert!(
            ["budget", "size limit"].iter().any(|w| e.contains(w)),
            "{bomb}: {e}"
        );
    }
    // An ordinary accumulation stays well within the budget.
    let ok = "{% set ns = namespace(s='') %}{% for i in range(2000) %}{% set ns.s = ns.s ~ i ~ ',' %}{% endfor %}{{ ns.s|length }}";
    assert_eq!(render(&env, &rewrite(ok).unwrap().source).unwrap(), "8890");
}

#[test]
fn a_template_that_selects_from_the_body_is_told_apart() {
    for (source, selects) in [
        ("{{ input.path('$.a') }}", true),
        ("{% set i = input %}{{ i.json('$') }}", true),
        ("{{ input['path']('$') }}", true),
        ("{{ input.body|length }} {{ input.params('x') }}", false),
        ("ok", false),
    ] {
        assert_eq!(rewrite(source).unwrap().selects_json, selects, "{source}");
    }
}
