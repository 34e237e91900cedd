//! openai: placeholder
