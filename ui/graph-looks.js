// How the task graph is sized and drawn: the boxes and the gaps the layout leaves between them, the zooms at
// which labels, curves and links are drawn, the fonts and colours, and how much of a name is ever measured.

export const BOX = { width: 220, height: 52 };
export const GAPS = { rank: 70, node: 14 };
export const READABLE = 0.75; // the smallest zoom at which full box labels are drawn (12 px text at 9 px)
export const COMPACT = 0.45; // from this zoom up to READABLE, one line (icon and name) at 11 px on screen
export const MAX_ZOOM = 4;
export const CURVES = 0.3; // below this zoom links are straight (curves would not show) and carry no arrowheads
export const LINKS_PITCH = 3; // screen pixels between the rows of tasks below which links are left out (a grey blur)
export const FONT = "12px system-ui, sans-serif";
export const BACKGROUND = "#f6f8fa";
export const LINK = "#8c959f";
export const OUTLINE = "#24292f"; // the boxes' edges and the critical path's thick links
export const MINIMAP = { width: 200, height: 130 };
// At most this many characters of a name are measured for a box (two lines hold about 70) or put in the hover
// tip: a name a tool stored a million characters long must not freeze the page.
export const LABEL_CHARS = 200;
export const TIP_CHARS = 500;
