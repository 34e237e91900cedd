//! Tests of config loading: every kind of problem with its place and key, interpolation,
//! redaction of secrets, exact prices, the shipped examples and the embedded demo.

use super::*;
use std::time::Duration;
use switchboard_types::MicroUsd;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str("test.yaml", text, &env(&[]))
}

fn problems(text: &str) -> Vec<Problem> {
    match load(text) {
        Ok(_) => panic!("expected problems for:\n{text}"),
        Err(errors) => errors.problems,
    }
}

/// The one problem whose key is `key`, with its line and column.
fn at<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no problem for `{key}` in {problems:#?}"))
}

fn assert_at(problems: &[Problem], key: &str, line: usize, column: usize, needle: &str) {
    let p = at(problems, key);
    assert_eq!(
        (p.line, p.column),
        (Some(line), Some(column)),
        "position of `{key}`: {p}"
    );
    assert!(p.message.contains(needle), "message of `{key}`: {p}");
}

const MINIMAL: &str = "providers:\n  demo: { type: mock }\nmodels:\n  demo:\n    targets: [ { provider: demo, model: echo } ]\n";

#[test]
fn minimal_config_gets_the_defaults() {
    let config = load(MINIMAL).unwrap();
    assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.limits.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(config.admin_key, None);
    let demo = &config.models["demo"];
    assert_eq!(demo.strategy, Strategy::Weighted);
    assert_eq!(demo.default_max_tokens, 4096);
    assert_eq!(demo.retry, RetryPolicy::default());
    assert_eq!(demo.timeouts, switchboard_providers::Timeouts::default());
    assert_eq!(demo.targets[0].weight, 1);
    assert_eq!(demo.targets[0].priority, 0);
    assert_eq!(demo.circuit, None);
    assert_eq!(config.providers["demo"].name, "demo");
}

#[test]
fn empty_file_and_no_models_are_valid() {
    let config = load("").unwrap();
    assert!(config.models.is_empty() && config.providers.is_empty());
    let config = load("listen: 127.0.0.1:9000\nproviders: {}\nmodels: {}\n").unwrap();
    assert_eq!(config.listen.port(), 9000);
}

#[test]
fn spec_example_loads() {
    let text = r#"
listen: 0.0.0.0:8080
database: sqlite://switchboard.db
redis: redis://127.0.0.1:6379
admin_key: ${SWITCHBOARD_ADMIN_KEY}

providers:
  openai:    { type: openai,    api_key: "${OPENAI_API_KEY}" }
  azure-eu:  { type: azure_openai, base_url: "https://x.openai.azure.com", api_key: "${AZ_KEY}", api_version: "2024-10-21", region: eu }
  anthropic: { type: anthropic, api_key: "${ANTHROPIC_API_KEY}" }
  gemini:    { type: gemini,    api_key: "${GEMINI_API_KEY}" }
  local:     { type: openai,    base_url: "http://127.0.0.1:8000/v1" }   # vLLM, Ollama
  demo:      { type: mock }

models:
  gpt-4o:
    strategy: weighted            # weighted | priority | least_latency | least_busy | cheapest
    targets:
      - { provider: openai,   model: gpt-4o, weight: 3 }
      - { provider: azure-eu, model: gpt-4o, weight: 1 }
    fallbacks: [claude-sonnet]    # other aliases
    retry: { attempts: 2, backoff_ms: 200 }
    timeout: { connect_ms: 2000, first_byte_ms: 30000, total_ms: 120000 }
    price: { input_per_mtok: 2.50, output_per_mtok: 10.00 }   # overrides the built-in catalog
    context_window: 128000
  claude-sonnet:
    targets: [ { provider: anthropic, model: claude-sonnet-4-5 } ]
  demo:
    targets: [ { provider: demo, model: echo } ]
"#;
    let vars = env(&[
        ("SWITCHBOARD_ADMIN_KEY", "sk-admin"),
        ("OPENAI_API_KEY", "sk-openai"),
        ("AZ_KEY", "az-key"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
        ("GEMINI_API_KEY", "gem-key"),
    ]);
    let config = load_str("spec.yaml", text, &vars).unwrap();
    assert_eq!(
        config.admin_key.as_ref().map(Secret::expose),
        Some("sk-admin")
    );
    assert_eq!(config.redis.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(config.providers.len(), 6);
    assert_eq!(
        config.providers["openai"].settings,
        switchboard_providers::ProviderSettings::Openai {
            base_url: None,
            api_key: Some(switchboard_types::Secret::new("sk-openai")),
            organization: None,
            headers: Default::default(),
        }
    );
    let gpt = &config.models["gpt-4o"];
    assert_eq!(gpt.fallbacks, vec!["claude-sonnet".to_owned()]);
    assert_eq!(gpt.targets[0].weight, 3);
    assert_eq!(gpt.targets[1].priority, 1);
    assert_eq!(gpt.retry.attempts, 2);
    assert_eq!(gpt.retry.backoff, Duration::from_millis(200));
    assert_eq!(gpt.timeouts.connect, Duration::from_millis(2000));
    assert_eq!(
        gpt.timeouts.idle,
        Duration::from_millis(30_000),
        "default kept"
    );
    assert_eq!(gpt.context_window, Some(128_000));
    let price = gpt.price.unwrap();
    assert_eq!(price.input_per_mtok, MicroUsd(2_500_000));
    assert_eq!(price.output_per_mtok, MicroUsd(10_000_000));
}

#[test]
fn examples_load() {
    let vars = env(&[
        ("SWITCHBOARD_ADMIN_KEY", "sk-admin-test"),
        ("OPENAI_API_KEY", "sk-openai-test"),
        ("AZURE_OPENAI_API_KEY", "azure-test"),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("GEMINI_API_KEY", "gemini-test"),
    ]);
    let quick = include_str!("../../../../examples/quickstart.yaml");
    let config = load_str("quickstart.yaml", quick, &vars).unwrap();
    assert_eq!(config.models.keys().collect::<Vec<_>>(), ["demo"]);
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());

    let multi = include_str!("../../../../examples/multi-provider.yaml");
    let config = load_str("multi-provider.yaml", multi, &vars).unwrap();
    assert_eq!(config.providers.len(), 5);
    assert_eq!(config.models["fast"].strategy, Strategy::Cheapest);
    assert_eq!(config.models["local"].strategy, Strategy::Priority);
    assert_eq!(config.models["gpt-4o"].fallbacks, ["claude-sonnet"]);
    assert_eq!(config.models["claude-sonnet"].default_max_tokens, 8192);
    let circuit = config.models["claude-sonnet"].circuit.unwrap();
    assert_eq!(
        (circuit.failures, circuit.cooldown),
        (3, Duration::from_millis(10_000))
    );
    assert_eq!(
        config.providers["openai"].circuit,
        Some(CircuitPolicy::default())
    );
    assert_eq!(config.limits.max_body_bytes, 20 * 1024 * 1024);
    let claude = config.models["claude-sonnet"].price.unwrap();
    assert_eq!(claude.cached_input_per_mtok, Some(MicroUsd(300_000)));
    assert_eq!(claude.cache_write_per_mtok, Some(MicroUsd(3_750_000)));
}

#[test]
fn prices_are_converted_exactly() {
    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets: [ { provider: p, model: x, price: { input_per_mtok: 0.15, output_per_mtok: 10 } } ]\n    price: { input_per_mtok: 2.5, output_per_mtok: \"2.50\", cached_input_per_mtok: 0.000001, cache_write_per_mtok: 1e-6 }\n";
    let config = load(text).unwrap();
    let model = &config.models["m"];
    let price = model.price.unwrap();
    assert_eq!(price.input_per_mtok, MicroUsd(2_500_000));
    assert_eq!(price.output_per_mtok, MicroUsd(2_500_000));
    assert_eq!(price.cached_input_per_mtok, Some(MicroUsd(1)));
    assert_eq!(price.cache_write_per_mtok, Some(MicroUsd(1)));
    let target = model.targets[0].price.unwrap();
    assert_eq!(target.input_per_mtok, MicroUsd(150_000));
    assert_eq!(target.output_per_mtok, MicroUsd(10_000_000));
}

#[test]
fn bad_prices_are_problems() {
    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets: [ { provider: p, model: x } ]\n    price:\n      input_per_mtok: -1\n";
    assert_at(
        &problems(text),
        "models.m.price.input_per_mtok",
        7,
        7,
        "negative",
    );
    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets: [ { provider: p, model: x } ]\n    price:\n      input_per_mtok: 0.0000001\n";
    assert_at(
        &problems(text),
        "models.m.price.input_per_mtok",
        7,
        7,
        "6 decimals",
    );
}

#[test]
fn unknown_keys_name_file_line_column_and_key() {
    let text = "listen: 0.0.0.0:8080\nlisen: 1\n";
    let p = problems(text);
    assert_at(&p, "lisen", 2, 1, "unknown field `lisen`");
    assert_eq!(p[0].to_string().split(": ").next(), Some("test.yaml:2:1"));

    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets:\n      - provider: p\n        model: x\n        wieght: 2\n";
    assert_at(
        &problems(text),
        "models.m.targets[0].wieght",
        8,
        9,
        "unknown field `wieght`",
    );

    // Provider settings are a tagged enum: the unknown field is still located.
    let text = "providers:\n  openai: { type: openai, api_kee: x }\n";
    assert_at(
        &problems(text),
        "providers.openai.api_kee",
        2,
        27,
        "unknown field `api_kee`",
    );
    let text = "providers:\n  openai:\n    type: opnai\n";
    assert_at(
        &problems(text),
        "providers.openai.type",
        3,
        5,
        "unknown variant `opnai`",
    );
    let text = "providers:\n  p:\n    type: mock\n    circuit: { failures: 2, cooldown: 5 }\n";
    assert_at(
        &problems(text),
        "providers.p.circuit.cooldown",
        4,
        29,
        "unknown field",
    );
    let text = "providers:\n  p: { api_key: x }\n";
    assert_at(&problems(text), "providers.p", 2, 3, "missing field `type`");
}

#[test]
fn governance_sections_are_rejected_as_not_supported_yet() {}

#[test]
fn type_errors_are_located() {
    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    strategy: fastest\n    targets:\n      - { provider: p, model: x, weight: heavy }\n";
    let p = problems(text);
    assert_at(&p, "models.m.strategy", 5, 5, "unknown variant `fastest`");
    // One broken model does not hide another one's problem.
    let text = format!("{text}  n:\n    targets: [ {{ provider: p, model: x, weight: heavy }} ]\n");
    let p = problems(&text);
    assert_at(&p, "models.m.strategy", 5, 5, "unknown variant");
    assert_at(&p, "models.n.targets[0].weight", 9, 41, "invalid type");
    let p = problems("limits: { max_body_bytes: lots }\n");
    assert_at(&p, "limits.max_body_bytes", 1, 11, "invalid type");
}

#[test]
fn syntax_errors_are_located() {
    let p = problems("models:\n  m: [1, 2\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, Some(3));
    assert!(!p[0].message.contains(" at line "), "{}", p[0]);
}

#[test]
fn every_semantic_problem_is_collected_with_its_place() {
    let text = "\
listen: localhost
limits: { max_body_bytes: 0 }
providers:
  openai: { type: openai, base_url: \"api.openai.com/v1\" }
  ant: { type: anthropic, api_key: \"\", base_url: \"https://h:99999\" }
  p:
    type: mock
    circuit: { failures: 0 }
models:
  a:
    strategy: cheapest
    targets:
      - { provider: nope, model: x, weight: 0 }
      - { provider: p, model: y, price: { input_per_mtok: 1 } }
    fallbacks: [b, ghost]
    retry: { attempts: 11 }
    timeout: { connect_ms: 0, total_ms: 0 }
    circuit: { failures: 0 }
  b:
    targets: []
    fallbacks: [a]
  c:
    targets: [ { provider: p, model: z } ]
    fallbacks: [c]
";
    let p = problems(text);
    assert_at(&p, "listen", 1, 1, "IP address and port");
    assert_at(&p, "limits.max_body_bytes", 2, 11, "greater than 0");
    assert_at(&p, "providers.openai.base_url", 4, 27, "http://");
    assert_at(&p, "providers.ant.api_key", 5, 27, "empty");
    assert_at(&p, "providers.ant.base_url", 5, 40, "port");
    assert_at(&p, "providers.p.circuit.failures", 8, 16, "at least 1");
    assert_at(
        &p,
        "models.a.targets[0].provider",
        13,
        11,
        "unknown provider `nope`",
    );
    assert_at(&p, "models.a.targets[0].weight", 13, 37, "at least 1");
    assert_at(&p, "models.a.targets[0]", 13, 11, "cheapest");
    assert_at(
        &p,
        "models.a.fallbacks[1]",
        15,
        20,
        "unknown model alias `ghost`",
    );
    assert_at(&p, "models.a.retry.attempts", 16, 14, "at most 10");
    assert_at(&p, "models.a.timeout.connect_ms", 17, 16, "greater than 0");
    assert_at(&p, "models.a.timeout.total_ms", 17, 31, "greater than 0");
    assert_at(&p, "models.a.circuit.failures", 18, 16, "at least 1");
    assert_at(&p, "models.b.targets", 20, 5, "at least one target");
    assert_at(
        &p,
        "models.b.fallbacks[0]",
        21,
        17,
        "fallback cycle: a -> b -> a",
    );
    assert_at(
        &p,
        "models.c.fallbacks[0]",
        24,
        17,
        "fallback cycle: c -> c",
    );
    assert_eq!(p.len(), 17, "{p:#?}");
    // File order.
    let lines: Vec<usize> = p.iter().filter_map(|p| p.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    // One line per problem.
    let errors = ConfigErrors {
        problems: p.clone(),
    };
    assert_eq!(errors.to_string().lines().count(), p.len());
}

#[test]
fn references_to_entries_that_failed_to_parse_are_not_reported_twice() {
    let text = "providers:\n  p: { type: mock, bogus: 1 }\nmodels:\n  m:\n    targets: [ { provider: p, model: x } ]\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, "providers.p.bogus");
}

#[test]
fn retry_and_circuit_values_are_read() {
    let text = format!(
        "{MINIMAL}    retry: {{ attempts: 10, backoff_ms: 50, max_backoff_ms: 400 }}\n    circuit: {{ cooldown_ms: 0 }}\n"
    );
    let model = load(&text).unwrap().models["demo"].clone();
    assert_eq!(model.retry.attempts, 10);
    assert_eq!(model.retry.max_backoff, Duration::from_millis(400));
    assert_eq!(model.circuit.unwrap().failures, 5);
    let text = format!("{MINIMAL}    retry: {{ backoff_ms: 500, max_backoff_ms: 100 }}\n");
    assert_at(
        &problems(&text),
        "models.demo.retry.max_backoff_ms",
        6,
        31,
        "smaller",
    );
}

#[test]
fn interpolation_default_escape_and_comments() {
    let text = "\
listen: ${ADDR:-127.0.0.1:7000}
database: \"$${NOT_A_VAR}\"
# admin_key: ${UNSET_IN_A_COMMENT}
redis: ${REDIS_URL:-redis://fallback}   # ${ALSO_UNSET}
admin_key: ${ADMIN}
";
    let vars = env(&[("ADMIN", "sk-admin"), ("REDIS_URL", "")]);
    let config = load_str("t.yaml", text, &vars).unwrap();
    assert_eq!(config.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(config.database.as_deref(), Some("${NOT_A_VAR}"));
    assert_eq!(
        config.redis.as_deref(),
        Some("redis://fallback"),
        "`:-` also covers empty"
    );
    assert_eq!(config.admin_key, Some(Secret("sk-admin".into())));
}

#[test]
fn interpolation_inside_block_scalars_ignores_hashes() {
    // `#` inside a block scalar is text, not a comment: the variable after it is expanded.
    let text = "database: |\n  a # ${DB}\nlisten: 0.0.0.0:1\n";
    let config = load_str("t.yaml", text, &env(&[("DB", "x")])).unwrap();
    assert_eq!(config.database.as_deref(), Some("a # x\n"));
}

#[test]
fn expand_text_resolves_or_keeps_escapes() {
    // `Keep` is for text expanded again later (`switchboard apply`, then the server): `$${`
    // stays, and a `${` inside a value is escaped so that the second pass does not expand it.
    let vars = env(&[("KEY", "sk-1"), ("TRICKY", "a${b"), ("EMPTY", "")]);
    let text = "a: ${KEY}\nb: ${NOPE:-x}\nc: $${LIT}\nd: ${EMPTY:-y} # ${NOPE}\ne: ${TRICKY}";
    assert_eq!(
        expand_text(text, &vars, Escapes::Resolve).as_deref(),
        Ok("a: sk-1\nb: x\nc: ${LIT}\nd: y # ${NOPE}\ne: a${b")
    );
    let kept = expand_text(text, &vars, Escapes::Keep);
    assert_eq!(
        kept.as_deref(),
        Ok("a: sk-1\nb: x\nc: $${LIT}\nd: y # ${NOPE}\ne: a$${b")
    );
    // The second pass reads the escapes as literals, whatever its own environment holds.
    let second = env(&[("LIT", "no"), ("b", "no")]);
    let kept = kept.unwrap_or_default();
    assert_eq!(
        expand_text(&kept, &second, Escapes::Resolve).as_deref(),
        Ok("a: sk-1\nb: x\nc: ${LIT}\nd: y # ${NOPE}\ne: a${b")
    );
}

#[test]
fn expand_text_reports_every_problem_with_its_place() {
    let vars = env(&[("MULTI", "a\nb"), ("KEY", "a-long-value")]);
    let text = "x: ${KEY} ${NOPE}\ny: \"${MULTI}\"\nz: ${BAD-NAME}";
    for escapes in [Escapes::Resolve, Escapes::Keep] {
        let problems = expand_text(text, &vars, escapes).unwrap_err();
        let places: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(places, [(1, 11), (2, 5), (3, 4)], "{problems:#?}");
        assert!(problems[0].message.contains("`NOPE` is not set"));
        assert!(problems[1].message.contains("spans several lines"));
        assert!(problems[2]
            .message
            .contains("not a valid environment variable name"));
    }
}

#[test]
fn expand_text_keeps_hashes_inside_block_scalars() {
    let text = "p: |\n  # ${KEY}\nq: 1 # ${KEY}";
    assert_eq!(
        expand_text(text, &env(&[("KEY", "sk-1")]), Escapes::Resolve).as_deref(),
        Ok("p: |\n  # sk-1\nq: 1 # ${KEY}")
    );
}

#[test]
fn missing_variables_are_problems_with_their_place() {
    let text = "listen: 0.0.0.0:8080\nproviders:\n  openai: { type: openai, api_key: \"${OPENAI_API_KEY}\" }\n  anthropic:\n    type: anthropic\n    api_key: ${ANTHROPIC_API_KEY}\ndatabase: ${BAD-NAME}\nredis: ${UNCLOSED\n";
    let p = problems(text);
    assert_at(
        &p,
        "providers.openai.api_key",
        3,
        37,
        "`OPENAI_API_KEY` is not set",
    );
    // The empty value left behind is not reported again as an empty API key.
    assert_at(
        &p,
        "providers.anthropic.api_key",
        6,
        14,
        "`ANTHROPIC_API_KEY` is not set",
    );
    assert_at(
        &p,
        "database",
        7,
        11,
        "not a valid environment variable name",
    );
    assert_at(&p, "redis", 8, 8, "unterminated");
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn columns_after_an_expansion_point_into_the_original_line() {
    let text = "providers:\n  p: { type: openai, api_key: \"${K}\", bogus: 1 }\n";
    let vars = env(&[("K", "a-much-longer-secret-value")]);
    let p = load_str("t.yaml", text, &vars).unwrap_err().problems;
    assert_at(&p, "providers.p.bogus", 2, 39, "unknown field");
}

#[test]
fn secrets_never_appear_in_error_text() {
    let secret = "sk-live-0123456789abcdef";
    let vars = env(&[("KEY", secret), ("W", secret)]);
    let texts = [
        // A type error whose serde message would quote the value.
        "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets: [ { provider: p, model: x, weight: \"${W}\" } ]\n",
        // An unknown provider named from the environment.
        "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets: [ { provider: \"${KEY}\", model: x } ]\n",
        // A broken URL that carries the key.
        "providers:\n  g: { type: gemini, api_key: x, base_url: \"ftp://h/?key=${KEY}\" }\n",
        // A syntax error right after the value.
        "admin_key: \"${KEY}\" \"\n",
        "listen: ${KEY}\n",
    ];
    for text in texts {
        let errors = load_str("t.yaml", text, &vars).unwrap_err();
        let shown = format!("{errors} {errors:?}");
        assert!(!shown.contains(secret), "secret leaked: {shown}");
        assert!(!shown.contains("0123456789"), "secret leaked: {shown}");
    }
    let config = load_str("t.yaml", "admin_key: ${KEY}\n", &vars).unwrap();
    assert!(!format!("{config:?}").contains(secret));
}

#[test]
fn problem_display() {
    let p = Problem {
        file: "a.yaml".into(),
        line: Some(3),
        column: Some(7),
        key: "models.x.targets[0].provider".into(),
        message: "unknown provider `y`".into(),
    };
    assert_eq!(
        p.to_string(),
        "a.yaml:3:7: models.x.targets[0].provider: unknown provider `y`"
    );
    let p = Problem {
        line: None,
        column: None,
        key: String::new(),
        ..p
    };
    assert_eq!(p.to_string(), "a.yaml: unknown provider `y`");
}

#[test]
fn unreadable_file_is_one_problem() {
    let errors = load_file(Path::new("/nonexistent/switchboard.yaml")).unwrap_err();
    assert_eq!(errors.problems.len(), 1);
    assert!(errors
        .to_string()
        .starts_with("/nonexistent/switchboard.yaml: cannot read"));
}

#[test]
fn dotted_aliases_keep_their_positions() {
    let text = "models:\n  gpt-4.1:\n    targets: [ { provider: none, model: x } ]\n";
    assert_at(
        &problems(text),
        "models.gpt-4.1.targets[0].provider",
        3,
        18,
        "unknown provider",
    );
}

#[test]
fn raw_provider_deserializes_with_its_circuit() {
    let raw: raw::RawProvider =
        serde_yaml::from_str("{ type: mock, latency_ms: 5, circuit: { failures: 2 } }").unwrap();
    assert_eq!(raw.circuit.and_then(|c| c.failures), Some(2));
    let err = serde_yaml::from_str::<raw::RawProvider>("{ type: mock, nope: 1 }").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn demo_config_is_the_mock_demo() {
    let config = demo_config(Secret("sk-demo".into()), "127.0.0.1:8080".parse().unwrap()).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database.as_deref(), Some("sqlite://switchboard.db"));
    assert_eq!(config.models["demo"].targets[0].provider, "demo");
    assert_eq!(config.models["demo"].targets[0].model, "echo");
    assert!(matches!(
        config.providers["demo"].settings,
        switchboard_providers::ProviderSettings::Mock { .. }
    ));
    assert_eq!(
        config.admin_key.as_ref().map(Secret::expose),
        Some("sk-demo")
    );
}

#[test]
fn stored_entries_join_the_file_and_the_file_wins() {
    let text = "providers:\n  p: { type: mock }\nmodels:\n  a: { targets: [ { provider: p, model: x } ] }\n";
    let stored = StoredLayer {
        providers: vec![
            (
                "q".into(),
                serde_json::json!({"type": "mock", "latency_ms": 1}),
            ),
            ("p".into(), serde_json::json!({"type": "openai"})),
        ],
        models: vec![(
            "b".into(),
            serde_json::json!({"targets": [{"provider": "q", "model": "y"}], "requires_approval": true}),
        )],
        ..StoredLayer::default()
    };
    let config = load_layered("f.yaml", text, &|_| None, &stored).unwrap();
    assert!(matches!(
        config.providers["p"].settings,
        switchboard_providers::ProviderSettings::Mock { .. }
    ));
    assert!(config.providers.contains_key("q"));
    assert!(config.models["b"].requires_approval);
    assert!(!config.models["a"].requires_approval);

    // A stored model naming a missing provider is a problem like any other, and stored values
    // are not ${VAR}-expanded.
    let stored = StoredLayer {
        providers: vec![],
        models: vec![(
            "c".into(),
            serde_json::json!({"targets": [{"provider": "${NOPE}", "model": "y"}]}),
        )],
        ..StoredLayer::default()
    };
    let err = load_layered("f.yaml", text, &|_| None, &stored).unwrap_err();
    assert!(
        err.to_string().contains("models.c.targets[0].provider"),
        "{err}"
    );
    assert!(err.to_string().contains("${NOPE}"), "{err}");
}

#[test]
fn access_section_is_read_and_checked() {
    let text = "access:\n  key_cache_ttl_ms: 500\n  oidc: { issuer: \"https://idp.example.com\", audience: sb, claims: { org: tenant } }\n";
    let config = load_str("f.yaml", text, &|_| None).unwrap();
    assert_eq!(config.access.key_cache_ttl.as_millis(), 500);
    let oidc = config.access.oidc.unwrap();
    assert_eq!(oidc.claims.org, "tenant");
    assert_eq!(oidc.claims.role, "role");
    let err = load_str(
        "f.yaml",
        "access:\n  oidc: { issuer: nope, audience: \"\" }\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("access.oidc.issuer"), "{err}");
    assert!(err.contains("access.oidc.audience"), "{err}");
    assert_at(
        &problems("access:\n  typo: 1\n"),
        "access.typo",
        2,
        3,
        "unknown field",
    );
}
