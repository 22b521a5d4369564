"""WhatsApp over Meta's WhatsApp Business Cloud API: sends through the Graph API, reads the signed
status webhooks Meta posts back to `/webhooks/whatsapp`, and answers the GET verification handshake."""
