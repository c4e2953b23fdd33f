"""Inline mode: `@bot words` in any chat lists the user's own results to send there."""
