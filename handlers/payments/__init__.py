"""Telegram Stars: /buy, invoices, pre-checkout, payments, /balance; imports handlers.common."""
