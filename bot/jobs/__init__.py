"""Jobs, no aiogram: request, queue, updates in, poller; imports telegram, prompts and below."""
