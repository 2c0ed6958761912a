"""`specchat bench`: side-by-side speed measurement and calibrated pairs."""
