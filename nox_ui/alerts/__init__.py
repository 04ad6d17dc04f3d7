"""Monitoring and alerting: rules evaluated on every sample, alert episodes, silences, notifications.

- `messages.py`: the contract between the engine and the notifiers (`AlertMessage`, `Dispatcher`).
- `rules.py`, `engine.py`, `silences.py`: rules, evaluation, episodes, acks, silences, preview.
- `notify.py`: notifier channels (webhook, email, apprise), the delivery queue and its log.
"""
