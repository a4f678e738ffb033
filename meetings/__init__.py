"""Referrals, meetings, agendas, minutes, decisions and actions."""
