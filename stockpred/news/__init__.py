"""News: encoding articles into vectors, and the news-aware seq2seq model."""
