"""The integrations worker of the API service (`python -m services.api.integrations`): the queue
contract's request consumer, lifecycle event publisher and integration Redis users (docs/integrations.md)."""
