import java.io.BufferedInputStream;
import java.io.InputStream;
import java.security.MessageDigest;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Reads a zip from standard input with java.util.zip.ZipInputStream, the streaming reader
 * of the JDK (and of `jar x`, Android, many servers), and prints one JSON line per entry:
 * {"name", "dir", "size", "sha256"}. Any failure exits non-zero with the message on stderr.
 * Run as a single-file program: `java ZipStreamReader.java < archive.zip`.
 */
public class ZipStreamReader {
  public static void main(String[] args) throws Exception {
    InputStream in = new BufferedInputStream(System.in, 1 << 16);
    byte[] buf = new byte[1 << 16];
    StringBuilder out = new StringBuilder();
    try (ZipInputStream zip = new ZipInputStream(in)) {
      ZipEntry entry;
      while ((entry = zip.getNextEntry()) != null) {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        long size = 0;
        int n;
        while ((n = zip.read(buf)) > 0) {
          sha.update(buf, 0, n);
          size += n;
        }
        StringBuilder hex = new StringBuilder();
        for (byte b : sha.digest()) hex.append(String.format("%02x", b));
        out.append("{\"name\":").append(quote(entry.getName()))
            .append(",\"dir\":").append(entry.isDirectory())
            .append(",\"size\":").append(size)
            .append(",\"sha256\":\"").append(hex).append("\"}\n");
      }
    }
    System.out.print(out);
    System.out.flush();
  }

  /** A JSON string, every non-ASCII character escaped (stdout's charset does not matter). */
  static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }
}
