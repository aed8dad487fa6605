"""Neural vocoders we train to make fakes with (``tinynsf``)."""
