"""The reminder pipeline: from a SIM's dates to messages in the outbox.

``rules``
    What is due when: pure functions over plain values (no database, no clock).
``slots``
    The slot store: each SIM's upcoming reminders in the ``schedule`` table.
``planner``
    Due slots into outbox rows, in two set-based statements per pass.
``records``
    What users tell SIM Watcher (a renewal, a balance check) and its consequences.
``status``
    The read side of ``watcher status``.
"""
