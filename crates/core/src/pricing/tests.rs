//! Cost arithmetic with real prices, and the built-in catalog: it parses, every entry is sane,
//! and model names resolve to the right entry.

use super::*;

fn usd(text: &str) -> MicroUsd {
    MicroUsd::parse_dollars(text).unwrap()
}

fn price(input: &str, output: &str) -> Price {
    Price {
        input_per_mtok: usd(input),
        output_per_mtok: usd(output),
        ..Price::default()
    }
}

#[test]
fn the_builtin_catalog_parses_and_every_entry_is_sane() {
    let catalog = Catalog::parse(include_str!("../../data/prices.yaml")).unwrap();
    assert_eq!(catalog.version(), "2026-12-06");
    assert_eq!(builtin(), &catalog);
    assert!(catalog.models().count() >= 30);
    for (name, p) in catalog.models() {
        assert!(p.input_per_mtok >= MicroUsd::ZERO, "{name}");
        assert!(p.output_per_mtok >= MicroUsd::ZERO, "{name}");
        assert!(
            name.starts_with("text-embedding") || p.output_per_mtok > MicroUsd::ZERO,
            "{name}"
        );
        if let Some(cached) = p.cached_input_per_mtok {
            assert!(
                cached >= MicroUsd::ZERO && cached <= p.input_per_mtok,
                "{name}"
            );
        }
        if let Some(write) = p.cache_write_per_mtok {
            assert!(write >= p.input_per_mtok, "{name}");
        }
        if let Some(reasoning) = p.reasoning_per_mtok {
            assert!(reasoning >= MicroUsd::ZERO, "{name}");
        }
    }
}

#[test]
fn the_catalog_has_the_main_models_at_their_published_prices() {
    let cat = builtin();
    for name in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "gpt-3.5-turbo",
        "gpt-4-turbo",
        "claude-opus-4-1",
        "claude-opus-4",
        "claude-sonnet-4-5",
        "claude-sonnet-4",
        "claude-3-7-sonnet",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.0-flash",
    ] {
        assert!(cat.lookup(name).is_some(), "{name}");
    }
    let sonnet = cat.lookup("claude-sonnet-4-5").unwrap();
    assert_eq!(sonnet.input_per_mtok, MicroUsd(3_000_000));
    assert_eq!(sonnet.output_per_mtok, MicroUsd(15_000_000));
    // Anthropic: a 5-minute cache write is 1.25x input, a cache read 0.1x.
    assert_eq!(sonnet.cache_write_per_mtok, Some(MicroUsd(3_750_000)));
    assert_eq!(sonnet.cached_input_per_mtok, Some(MicroUsd(300_000)));
    let embed = cat.lookup("text-embedding-3-small").unwrap();
    assert_eq!(embed.input_per_mtok, MicroUsd(20_000));
    assert_eq!(embed.output_per_mtok, MicroUsd::ZERO);
}

#[test]
fn lookup_strips_prefixes_and_snapshot_suffixes() {
    let cat = builtin();
    let get = |name: &str| cat.lookup(name).map(|p| p.input_per_mtok);
    // The longest known name wins only when the rest is a date.
    assert_eq!(get("gpt-4o-mini-2024-07-18"), Some(usd("0.15")));
    assert_eq!(get("gpt-4o-2024-08-06"), Some(usd("2.50")));
    assert_eq!(
        get("gpt-4o-2024-05-13"),
        Some(usd("5.00")),
        "its own listed price"
    );
    assert_eq!(get("openai/gpt-4.1-nano-2025-04-14"), Some(usd("0.10")));
    assert_eq!(get("o3-mini-2025-01-31"), Some(usd("1.10")));
    assert_eq!(get("gpt-3.5-turbo-0125"), Some(usd("0.50")));
    assert_eq!(get("claude-sonnet-4-5-20250929"), Some(usd("3.00")));
    assert_eq!(get("claude-opus-4-1-20250805"), Some(usd("15.00")));
    assert_eq!(get("claude-3-5-haiku-latest"), Some(usd("0.80")));
    assert_eq!(
        get("anthropic/claude-haiku-4-5-20251001"),
        Some(usd("1.00"))
    );
    assert_eq!(
        get("claude-sonnet-4@20250514"),
        Some(usd("3.00")),
        "Vertex spelling"
    );
    assert_eq!(get("claude-sonnet-4-0"), Some(usd("3.00")), "an alias");
    assert_eq!(get("models/gemini-2.5-flash"), Some(usd("0.30")));
    assert_eq!(
        get("gemini-2.5-flash-lite-preview-06-17"),
        Some(usd("0.10"))
    );
    assert_eq!(get("gemini-2.0-flash-001"), Some(usd("0.10")));
    assert_eq!(get("GPT-4o"), Some(usd("2.50")), "case does not matter");
}

#[test]
fn lookup_refuses_other_models_that_share_a_prefix() {
    let cat = builtin();
    for name in [
        "gpt-4",      // not listed: gpt-4-turbo is a different price
        "gpt-4-0613", // nor its snapshots
        "o1-mini",    // a different model from o1
        "o3-pro",
        "gpt-5-chat",
        "gpt-4o-audio-preview", // audio is priced differently
        "gemini-2.5-flash-image",
        "gemini-2.5-flash-preview-tts",
        "claude-opus-4-7", // a later version, not a date
        "mistral-large-latest",
        "llama-3.1-8b",
        "",
    ] {
        assert_eq!(cat.lookup(name), None, "{name}");
    }
}

#[test]
fn catalog_files_are_checked() {
    let head = "version: \"1\"\ncurrency: USD\nunit: per million tokens\nmodels:\n";
    let ok = Catalog::parse(&format!("{head}  m: {{ input: \"2.50\", output: 10 }}\n")).unwrap();
    assert_eq!(
        ok.lookup("m").unwrap().output_per_mtok,
        MicroUsd(10_000_000)
    );
    for (bad, why) in [
        (format!("{head}  m: {{ input: 2.5 }}\n"), "float"),
        (format!("{head}  m: {{ input: \"-1\" }}\n"), "negative"),
        (
            format!("{head}  m: {{ input: \"1\", cached_input: \"2\" }}\n"),
            "cached above input",
        ),
        (
            format!("{head}  m: {{ input: \"1\", bogus: \"2\" }}\n"),
            "unknown field",
        ),
        (
            format!("{head}  m: {{ input: \"1\", aliases: [n] }}\n  n: {{ input: \"1\" }}\n"),
            "twice",
        ),
        (
            head.replace("USD", "EUR") + "  m: { input: \"1\" }\n",
            "currency",
        ),
        (
            head.replace("\"1\"", "\"\"") + "  m: { input: \"1\" }\n",
            "version",
        ),
    ] {
        assert!(Catalog::parse(&bad).is_err(), "{why}");
    }
}

#[test]
fn cost_of_cached_input_at_gpt_4o_prices() {
    // 1,000,000 prompt tokens of which 400,000 were cache reads, and 100,000 output tokens, at
    // $2.50 input, $1.25 cached, $10 output: 0.6 x 2.50 + 0.4 x 1.25 + 0.1 x 10 = $3.00.
    let price = builtin().lookup("gpt-4o").unwrap();
    let usage = Usage {
        input_tokens: 1_000_000,
        cached_input_tokens: 400_000,
        output_tokens: 100_000,
        ..Usage::default()
    };
    assert_eq!(cost(&usage, &price), MicroUsd(3_000_000));
}

#[test]
fn cost_of_reasoning() {
    // o3-like: 2,000 in, 5,000 out of which 4,000 reasoning; reasoning at its own $20 rate.
    let mut price = price("2.00", "8.00");
    let usage = Usage {
        input_tokens: 2_000,
        output_tokens: 5_000,
        reasoning_tokens: 4_000,
        ..Usage::default()
    };
    // Without a reasoning price, reasoning is output: 2,000 x 2 + 5,000 x 8 = 44,000 micros.
    assert_eq!(cost(&usage, &price), MicroUsd(44_000));
    price.reasoning_per_mtok = Some(usd("20"));
    // 2,000 x 2 + 1,000 x 8 + 4,000 x 20 = 92,000 micros.
    assert_eq!(cost(&usage, &price), MicroUsd(92_000));
}

#[test]
fn cost_of_an_anthropic_cache_write() {
    // Claude Sonnet 4.5: 10,000 uncached + 50,000 written + 200,000 read, 1,000 out.
    let price = builtin().lookup("claude-sonnet-4-5-20250929").unwrap();
    let usage = Usage {
        input_tokens: 260_000,
        cache_write_tokens: 50_000,
        cached_input_tokens: 200_000,
        output_tokens: 1_000,
        ..Usage::default()
    };
    // 10,000 x 3 + 50,000 x 3.75 + 200,000 x 0.30 + 1,000 x 15
    // = 30,000 + 187,500 + 60,000 + 15,000 micros.
    assert_eq!(cost(&usage, &price), MicroUsd(292_500));
    // Without cache prices, every prompt token is billed as input.
    let plain = Price {
        cached_input_per_mtok: None,
        cache_write_per_mtok: None,
        ..price
    };
    assert_eq!(cost(&usage, &plain), MicroUsd(260_000 * 3 + 15_000));
}

#[test]
fn cost_rounds_up_once_over_the_sum() {
    let price = builtin().lookup("gpt-4o").unwrap();
    // One input token at $2.50 per million is 2.5 micro-dollars: billed 3.
    let one = Usage {
        input_tokens: 1,
        ..Usage::default()
    };
    assert_eq!(cost(&one, &price), MicroUsd(3));
    // One input and one cached token: 2.5 + 1.25 = 3.75, rounded up once to 4 (rounding
    // each class on its own would give 3 + 2 = 5).
    let two = Usage {
        input_tokens: 2,
        cached_input_tokens: 1,
        ..Usage::default()
    };
    assert_eq!(cost(&two, &price), MicroUsd(4));
    assert_eq!(cost(&Usage::default(), &price), MicroUsd::ZERO);
    // Exact multiples are not rounded.
    let million = Usage {
        output_tokens: 1_000_000,
        ..Usage::default()
    };
    assert_eq!(cost(&million, &price), MicroUsd(10_000_000));
}

#[test]
fn cost_survives_extremes_and_broken_usage() {
    let price = price("75", "150");
    let huge = Usage {
        input_tokens: u64::MAX,
        output_tokens: u64::MAX,
        ..Usage::default()
    };
    assert_eq!(cost(&huge, &price), MicroUsd(i64::MAX));
    // More cached than input tokens breaks the invariant; nothing goes negative.
    let broken = Usage {
        input_tokens: 10,
        cached_input_tokens: 20,
        output_tokens: 1,
        reasoning_tokens: 5,
        ..Usage::default()
    };
    assert!(cost(&broken, &price) > MicroUsd::ZERO);
}

#[test]
fn max_of_takes_the_worst_case_per_field() {
    let cheap = builtin().lookup("gpt-4o-mini").unwrap();
    let dear = Price {
        cached_input_per_mtok: None,
        reasoning_per_mtok: Some(usd("40")),
        ..price("1.00", "20")
    };
    let max = max_of(&cheap, &dear);
    assert_eq!(max.input_per_mtok, usd("1.00"));
    assert_eq!(max.output_per_mtok, usd("20"));
    // `dear` bills cache reads at its input price, which is above `cheap`'s cached price.
    assert_eq!(max.cached_input_per_mtok, Some(usd("1.00")));
    assert_eq!(max.cache_write_per_mtok, Some(usd("1.00")));
    assert_eq!(max.reasoning_per_mtok, Some(usd("40")));
    let usage = Usage {
        input_tokens: 1_000,
        cached_input_tokens: 300,
        output_tokens: 700,
        reasoning_tokens: 200,
        ..Usage::default()
    };
    assert!(cost(&usage, &max) >= cost(&usage, &cheap));
    assert!(cost(&usage, &max) >= cost(&usage, &dear));
}

fn load(text: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
    crate::config::load_str("test.yaml", text, &|_| None)
}

#[test]
fn config_prices_take_all_five_fields() {
    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    targets: [ { provider: p, model: x } ]\n    price: { input_per_mtok: \"2\", output_per_mtok: 8, cached_input_per_mtok: 0.5, cache_write_per_mtok: \"2.5\", reasoning_per_mtok: \"12.000001\" }\n";
    let config = load(text).unwrap();
    let price = config.models["m"].price.unwrap();
    assert_eq!(price.reasoning_per_mtok, Some(MicroUsd(12_000_001)));
    assert_eq!(price.cache_write_per_mtok, Some(MicroUsd(2_500_000)));
}

#[test]
fn cheapest_needs_no_configured_price_for_catalog_models() {
    let text = "providers:\n  p: { type: mock }\nmodels:\n  m:\n    strategy: cheapest\n    targets: [ { provider: p, model: gpt-4o-2024-08-06 }, { provider: p, model: claude-haiku-4-5 } ]\n";
    assert!(load(text).is_ok());
    let unknown = text.replace("claude-haiku-4-5", "in-house-llm");
    let errors = load(&unknown).unwrap_err();
    assert!(
        errors.problems.iter().any(|p| p
            .message
            .contains("`in-house-llm` is not in the built-in price catalog")),
        "{errors:?}"
    );
}

#[test]
fn the_catalog_knows_the_context_windows_of_the_main_models() {
    let cat = builtin();
    for (model, window) in [
        ("gpt-4o", 128_000),
        ("gpt-4o-mini-2024-07-18", 128_000),
        ("openai/gpt-4.1-nano", 1_047_576),
        ("gpt-5-mini", 400_000),
        ("o3-mini", 200_000),
        ("o4-mini-2025-04-16", 200_000),
        ("claude-3-5-sonnet-20241022", 200_000),
        ("claude-3-7-sonnet-latest", 200_000),
        ("claude-sonnet-4-5-20250929", 200_000),
        ("claude-opus-4-0", 200_000),
        ("claude-haiku-4-5", 200_000),
        ("models/gemini-2.5-pro", 1_048_576),
        ("gemini-2.0-flash-001", 1_048_576),
        ("gemini-1.5-pro-002", 2_097_152),
        ("gemini-1.5-flash", 1_048_576),
    ] {
        assert_eq!(cat.context_window(model), Some(window), "{model}");
    }
    assert_eq!(cat.context_window("echo"), None);
    assert_eq!(cat.context_window("text-embedding-3-small"), None);
    // A window-only entry has no price.
    assert!(cat.lookup("claude-3-5-sonnet").is_none());
    assert!(cat.lookup("gemini-1.5-pro").is_none());
}

#[test]
fn catalog_entries_need_a_price_or_a_window() {
    let head = "version: \"1\"\ncurrency: USD\nunit: per million tokens\nmodels:\n";
    let parse = |models: &str| Catalog::parse(&format!("{head}{models}"));
    let cat = parse("  a: { context_window: 1000 }\n  b: { input: \"1\" }\n").unwrap();
    assert_eq!(cat.context_window("a"), Some(1000));
    assert_eq!(cat.context_window("b"), None);
    assert!(cat.lookup("a").is_none());
    assert!(parse("  a: {}\n").is_err());
    assert!(parse("  a: { output: \"1\", context_window: 10 }\n").is_err());
    assert!(parse("  a: { input: \"1\", context_window: 0 }\n").is_err());
    assert!(parse("  a: { context_window: 10 }\n  A: { input: \"1\" }\n").is_err());
}
