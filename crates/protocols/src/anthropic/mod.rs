//! anthropic: placeholder
