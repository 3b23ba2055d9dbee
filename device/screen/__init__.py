"""What the display shows: scenes, renderer, pictures, palette, contact sheets."""
