import java.io.BufferedInputStream;
import java.io.InputStream;
import java.security.MessageDigest;
import net.lingala.zip4j.io.inputstream.ZipInputStream;
import net.lingala.zip4j.model.LocalFileHeader;

/**
 * Reads a zip from standard input with zip4j's streaming reader,
 * net.lingala.zip4j.io.inputstream.ZipInputStream (Debian libzip4j-java), and prints one JSON
 * line per entry: {"name", "dir", "size", "sha256"} -- the format of
 * test/helpers/ZipStreamReader.java. Any failure exits non-zero with the message on stderr.
 * Run as a single-file program:
 *   java -cp /usr/share/java/zip4j.jar Zip4jStreamReader.java < archive.zip
 */
public class Zip4jStreamReader {
  public static void main(String[] args) throws Exception {
    InputStream in = new BufferedInputStream(System.in, 1 << 16);
    byte[] buf = new byte[1 << 16];
    StringBuilder out = new StringBuilder();
    try (ZipInputStream zip = new ZipInputStream(in)) {
      LocalFileHeader entry;
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
        out.append("{\"name\":").append(quote(entry.getFileName()))
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
