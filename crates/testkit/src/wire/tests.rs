//! Unit tests of the helpers every mock shares (text splitting, fragments, embeddings).
use super::*;

#[test]
fn split_text_keeps_all_chars() {
    let parts = split_text("héllo wörld", 3);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts.concat(), "héllo wörld");
    assert!(split_text("", 3).is_empty());
    assert_eq!(split_text("ab", 5), vec!["a", "b"]);
}

#[test]
fn fragments_rebuild_arguments() {
    let args = r#"{"city":"Paris","unit":"c"}"#;
    let f = fragments(args);
    assert_eq!(f.len(), 3);
    assert_eq!(f.concat(), args);
    assert_eq!(fragments(""), vec![String::new()]);
}

#[test]
fn embeddings_are_deterministic_and_input_dependent() {
    let a = embedding_values("hello", 8);
    assert_eq!(a, embedding_values("hello", 8));
    assert_ne!(a, embedding_values("world", 8));
    assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
}

#[test]
fn text_of_parts_skips_non_text() {
    let parts = serde_json::json!([
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"text": "b"}
    ]);
    assert_eq!(text_of_parts(&parts), "ab");
}
