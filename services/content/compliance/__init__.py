"""Compliance of posts: forbidden terms (absolute claims China's Advertising Law forbids in
ads) and personal data (mainland mobile numbers, resident ID numbers) found before review."""
