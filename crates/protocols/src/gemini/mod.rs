//! gemini: placeholder
